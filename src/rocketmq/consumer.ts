// PULL_MESSAGE: request header, long polling, status mapping and message decoding.
import { RemotingCommand } from './codec';
import { RequestSpec } from './connection';
import { ResponseCode, errorForResponse } from './errors';
import { Message } from './message';
import { decodeMessages } from './message-decoder';
import { RequestCode } from './request-code';
import { MessageQueue } from './route';

export const PullSysFlag = {
  COMMIT_OFFSET: 0x1,
  SUSPEND: 0x2,
  SUBSCRIPTION: 0x4,
  CLASS_FILTER: 0x8,
  LITE_PULL: 0x10,
} as const;

/** Group used when the caller does not name one; the broker auto-creates subscription groups. */
export const DEFAULT_CONSUMER_GROUP = 'IOT_BRIDGE_READER';

export type PullStatus =
  /** Messages returned. */
  | 'FOUND'
  /** Offset is at the end of the queue (PULL_NOT_FOUND). */
  | 'NO_NEW_MSG'
  /** Messages exist but none matched the tag filter (PULL_RETRY_IMMEDIATELY); continue at nextBeginOffset. */
  | 'NO_MATCHED_MSG'
  /** Offset is outside [minOffset, maxOffset] (PULL_OFFSET_MOVED); continue at nextBeginOffset. */
  | 'OFFSET_ILLEGAL';

export interface PullOptions {
  consumerGroup?: string;
  maxMessages?: number;
  /** Long polling: the broker holds the request up to this long waiting for a message. 0 = return at once. */
  suspendMs?: number;
  /** Tag expression ("*" or "a || b"). */
  subscription?: string;
  /** Piggy-back a consumer-offset commit for the group (FLAG_COMMIT_OFFSET). */
  commitOffset?: number;
  /** Response timeout on top of suspendMs. */
  timeoutMs?: number;
}

export interface PullResult {
  status: PullStatus;
  messages: Message[];
  nextBeginOffset: number;
  minOffset: number;
  maxOffset: number;
  suggestWhichBrokerId: number;
}

export function encodePull(queue: MessageQueue, offset: number, options: PullOptions): RequestSpec {
  let sysFlag = PullSysFlag.SUBSCRIPTION;
  const suspendMs = options.suspendMs ?? 0;
  if (suspendMs > 0) sysFlag |= PullSysFlag.SUSPEND;
  if (options.commitOffset !== undefined) sysFlag |= PullSysFlag.COMMIT_OFFSET;
  return {
    code: RequestCode.PULL_MESSAGE,
    extFields: {
      consumerGroup: options.consumerGroup ?? DEFAULT_CONSUMER_GROUP,
      topic: queue.topic,
      queueId: String(queue.queueId),
      queueOffset: String(offset),
      maxMsgNums: String(options.maxMessages ?? 32),
      sysFlag: String(sysFlag),
      commitOffset: String(options.commitOffset ?? 0),
      suspendTimeoutMillis: String(suspendMs),
      subscription: options.subscription ?? '*',
      subVersion: '0',
      expressionType: 'TAG',
      bname: queue.brokerName,
    },
  };
}

function long(ext: Record<string, string>, name: string, fallback: number): number {
  const v = ext[name];
  return v === undefined || v === '' ? fallback : Number(v);
}

export function decodePullResponse(response: RemotingCommand, address: string, queue: MessageQueue, offset: number): PullResult {
  let status: PullStatus;
  switch (response.code) {
    case ResponseCode.SUCCESS:
      status = 'FOUND';
      break;
    case ResponseCode.PULL_NOT_FOUND:
      status = 'NO_NEW_MSG';
      break;
    case ResponseCode.PULL_RETRY_IMMEDIATELY:
      status = 'NO_MATCHED_MSG';
      break;
    case ResponseCode.PULL_OFFSET_MOVED:
      status = 'OFFSET_ILLEGAL';
      break;
    default:
      throw errorForResponse(response.code, response.remark, address, RequestCode.PULL_MESSAGE);
  }
  const ext = response.extFields;
  const messages = status === 'FOUND' ? decodeMessages(response.body, queue.topic) : [];
  return {
    status,
    messages,
    nextBeginOffset: long(ext, 'nextBeginOffset', offset),
    minOffset: long(ext, 'minOffset', 0),
    maxOffset: long(ext, 'maxOffset', 0),
    suggestWhichBrokerId: long(ext, 'suggestWhichBrokerId', 0),
  };
}
