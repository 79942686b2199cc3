// Queue offsets (GET_MIN_OFFSET / GET_MAX_OFFSET) and consumer offsets (QUERY / UPDATE_CONSUMER_OFFSET).
// Consumer groups named %LMQ%... are kept by the broker's LMQ offset manager (enableLmq=true).
import { RemotingCommand } from './codec';
import { RequestSpec } from './connection';
import { RemotingProtocolError, ResponseCode, errorForResponse } from './errors';
import { RequestCode } from './request-code';
import { MessageQueue } from './route';

export function encodeGetMaxOffset(queue: MessageQueue): RequestSpec {
  return { code: RequestCode.GET_MAX_OFFSET, extFields: { topic: queue.topic, queueId: String(queue.queueId), bname: queue.brokerName } };
}

export function encodeGetMinOffset(queue: MessageQueue): RequestSpec {
  return { code: RequestCode.GET_MIN_OFFSET, extFields: { topic: queue.topic, queueId: String(queue.queueId), bname: queue.brokerName } };
}

export function encodeQueryConsumerOffset(group: string, queue: MessageQueue): RequestSpec {
  return {
    code: RequestCode.QUERY_CONSUMER_OFFSET,
    extFields: { consumerGroup: group, topic: queue.topic, queueId: String(queue.queueId), setZeroIfNotFound: 'false', bname: queue.brokerName },
  };
}

export function encodeUpdateConsumerOffset(group: string, queue: MessageQueue, offset: number): RequestSpec {
  return {
    code: RequestCode.UPDATE_CONSUMER_OFFSET,
    extFields: { consumerGroup: group, topic: queue.topic, queueId: String(queue.queueId), commitOffset: String(offset), bname: queue.brokerName },
  };
}

export function offsetFrom(response: RemotingCommand, address: string, requestCode: number): number {
  if (response.code !== ResponseCode.SUCCESS) throw errorForResponse(response.code, response.remark, address, requestCode);
  const value = Number(response.extFields.offset);
  if (response.extFields.offset === undefined || !Number.isFinite(value)) {
    throw new RemotingProtocolError(`response to ${requestCode} from ${address} has no offset`);
  }
  return value;
}

/** undefined when the broker has no offset for the group (QUERY_NOT_FOUND). */
export function consumerOffsetFrom(response: RemotingCommand, address: string): number | undefined {
  if (response.code === ResponseCode.QUERY_NOT_FOUND) return undefined;
  return offsetFrom(response, address, RequestCode.QUERY_CONSUMER_OFFSET);
}
