// SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE: header encoding, queue selection, compression, response decoding.
import * as crypto from 'node:crypto';
import * as os from 'node:os';
import * as zlib from 'node:zlib';
import { RemotingCommand } from './codec';
import { RequestSpec } from './connection';
import { InvalidArgumentError, NoRouteError, ResponseCode, errorForResponse } from './errors';
import {
  LMQ_DISPATCH_SEPARATOR,
  LMQ_PREFIX,
  MAX_PROPERTIES_BYTES,
  MessageProperty,
  OutgoingMessage,
  bodyBuffer,
  checkUserProperties,
  encodeProperties,
} from './message';
import { MessageSysFlag } from './message-decoder';
import { RequestCode } from './request-code';
import { AUTO_CREATE_TOPIC_KEY, MessageQueue } from './route';

export const DEFAULT_PRODUCER_GROUP = 'IOT_BRIDGE_PRODUCER';
export const DEFAULT_TOPIC_QUEUE_NUMS = 4;
/** The broker caps topic names at 127 characters (TopicValidator); the client lets the broker decide. */
export const MAX_LMQ_DISPATCH_BYTES = 32 * 1024 - 1024;

export interface SendResult {
  /** Client-side unique id (UNIQ_KEY). */
  msgId: string;
  /** Broker id: store host + commit-log offset. */
  offsetMsgId: string;
  queue: MessageQueue;
  queueOffset: number;
}

export interface EncodedSend {
  spec: RequestSpec;
  uniqKey: string;
}

/** Java's String.hashCode, so a sharding key maps to the same queue as Java's SelectMessageQueueByHash. */
export function javaStringHash(text: string): number {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (Math.imul(31, h) + text.charCodeAt(i)) | 0;
  return h;
}

export function queueIndexForKey(key: string, queueCount: number): number {
  const value = javaStringHash(key) % queueCount;
  return value < 0 ? Math.abs(value) : value;
}

// Unique key: 10 bytes of process identity + 4 bytes time + 2 bytes counter, hex (32 chars like Java's).
const UNIQ_PREFIX = (() => {
  const b = Buffer.alloc(10);
  const ip = Object.values(os.networkInterfaces())
    .flat()
    .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal);
  const ipBytes = ip ? ip.address.split('.').map(Number) : [...crypto.randomBytes(4)];
  ipBytes.forEach((v, i) => b.writeUInt8(v & 0xff, i));
  b.writeUInt16BE(process.pid & 0xffff, 4);
  crypto.randomBytes(4).copy(b, 6);
  return b.toString('hex').toUpperCase();
})();
let uniqCounter = 0;

export function createUniqKey(): string {
  const tail = Buffer.allocUnsafe(6);
  tail.writeUInt32BE(Date.now() % 0x100000000 >>> 0, 0);
  tail.writeUInt16BE(uniqCounter, 4);
  uniqCounter = (uniqCounter + 1) & 0xffff;
  return UNIQ_PREFIX + tail.toString('hex').toUpperCase();
}

function uniqKeyOf(msg: OutgoingMessage): string {
  if (msg.uniqKey === undefined) return createUniqKey();
  // The Java client makes 32 hex characters from an IPv4 address and 56 from an IPv6 one.
  if (!/^[0-9A-Fa-f]{16,64}$/.test(msg.uniqKey)) throw new InvalidArgumentError(`uniqKey must be 16 to 64 hex characters, got ${JSON.stringify(msg.uniqKey)}`);
  return msg.uniqKey.toUpperCase();
}

export interface EncodeOptions {
  producerGroup: string;
  /** Compress bodies larger than this with zlib (the Java client's default is 4096); undefined = never. */
  compressBodyOverBytes?: number;
  extraProperties?: Record<string, string>;
}

function buildProperties(msg: OutgoingMessage, uniqKey: string, extra?: Record<string, string>): string {
  checkUserProperties(msg.properties);
  const props: Record<string, string> = { ...(msg.properties ?? {}) };
  if (msg.tags !== undefined && msg.tags !== '') props[MessageProperty.TAGS] = msg.tags;
  if (msg.keys && msg.keys.length > 0) {
    for (const k of msg.keys) {
      if (k.includes(' ')) throw new InvalidArgumentError(`message key "${k}" contains a space (the key separator)`);
    }
    props[MessageProperty.KEYS] = msg.keys.join(' ');
  }
  if (msg.shardingKey !== undefined) props[MessageProperty.SHARDING_KEY] = msg.shardingKey;
  props[MessageProperty.UNIQ_KEY] = uniqKey;
  props[MessageProperty.WAIT_STORE_MSG_OK] = 'true';
  Object.assign(props, extra ?? {});
  const text = encodeProperties(props);
  if (Buffer.byteLength(text, 'utf8') > MAX_PROPERTIES_BYTES) {
    throw new InvalidArgumentError(`message properties are ${Buffer.byteLength(text, 'utf8')} bytes; RocketMQ stores at most ${MAX_PROPERTIES_BYTES}`);
  }
  return text;
}

function maybeCompress(body: Buffer, options: EncodeOptions): { body: Buffer; sysFlag: number } {
  if (options.compressBodyOverBytes !== undefined && body.length > options.compressBodyOverBytes) {
    const compressed = zlib.deflateSync(body, { level: 5 });
    if (compressed.length < body.length) return { body: compressed, sysFlag: MessageSysFlag.COMPRESSED | MessageSysFlag.COMPRESSION_ZLIB };
  }
  return { body, sysFlag: 0 };
}

function sendHeader(topic: string, queue: MessageQueue, sysFlag: number, flag: number, properties: string, group: string, batch: boolean): Record<string, string> {
  // SendMessageRequestHeaderV2 uses one-letter field names to keep the header small.
  return {
    a: group,
    b: topic,
    c: AUTO_CREATE_TOPIC_KEY,
    d: String(DEFAULT_TOPIC_QUEUE_NUMS),
    e: String(queue.queueId),
    f: String(sysFlag),
    g: String(Date.now()),
    h: String(flag),
    i: properties,
    j: '0',
    k: 'false',
    m: batch ? 'true' : 'false',
    n: queue.brokerName,
  };
}

export function encodeSend(msg: OutgoingMessage, queue: MessageQueue, options: EncodeOptions): EncodedSend {
  if (!msg.topic) throw new InvalidArgumentError('message topic is required');
  if (bodyBuffer(msg.body).length === 0) {
    // SEND_MESSAGE_V2 with an empty body makes the broker fail (NullPointerException in
    // AbstractSendMessageProcessor.buildMsgContext); a batch of one stores an empty body fine.
    const batch = encodeBatchSend([msg], queue, options);
    return { spec: batch.spec, uniqKey: batch.uniqKeys[0] as string };
  }
  const uniqKey = uniqKeyOf(msg);
  const properties = buildProperties(msg, uniqKey, options.extraProperties);
  const { body, sysFlag } = maybeCompress(bodyBuffer(msg.body), options);
  return {
    uniqKey,
    spec: {
      code: RequestCode.SEND_MESSAGE_V2,
      extFields: sendHeader(msg.topic, queue, sysFlag, msg.flag ?? 0, properties, options.producerGroup, false),
      body,
    },
  };
}

/**
 * SEND_BATCH_MESSAGE body (MessageDecoder.encodeMessages): per message
 * int32 totalSize, int32 magic (0), int32 bodyCRC (0), int32 flag, int32 bodyLen, body, int16 propLen, props.
 */
export function encodeBatchSend(messages: OutgoingMessage[], queue: MessageQueue, options: EncodeOptions): { spec: RequestSpec; uniqKeys: string[] } {
  if (messages.length === 0) throw new InvalidArgumentError('batch is empty');
  const topic = messages[0]?.topic as string;
  const parts: Buffer[] = [];
  const uniqKeys: string[] = [];
  for (const msg of messages) {
    if (msg.topic !== topic) throw new InvalidArgumentError('all messages of a batch must have the same topic');
    const uniqKey = uniqKeyOf(msg);
    uniqKeys.push(uniqKey);
    const props = Buffer.from(buildProperties(msg, uniqKey, options.extraProperties), 'utf8');
    const body = bodyBuffer(msg.body);
    const head = Buffer.allocUnsafe(20);
    const total = 20 + body.length + 2 + props.length;
    head.writeInt32BE(total, 0);
    head.writeInt32BE(0, 4);
    head.writeInt32BE(0, 8);
    head.writeInt32BE(msg.flag ?? 0, 12);
    head.writeInt32BE(body.length, 16);
    const propLen = Buffer.allocUnsafe(2);
    propLen.writeInt16BE(props.length, 0);
    parts.push(head, body, propLen, props);
  }
  return {
    uniqKeys,
    spec: {
      code: RequestCode.SEND_BATCH_MESSAGE,
      extFields: sendHeader(topic, queue, 0, 0, '', options.producerGroup, true),
      body: Buffer.concat(parts),
    },
  };
}

export function decodeSendResponse(response: RemotingCommand, address: string, queue: MessageQueue, uniqKey: string): SendResult {
  if (response.code !== ResponseCode.SUCCESS) throw errorForResponse(response.code, response.remark, address, RequestCode.SEND_MESSAGE_V2);
  const ext = response.extFields;
  const queueId = ext.queueId !== undefined ? Number(ext.queueId) : queue.queueId;
  return {
    msgId: uniqKey,
    offsetMsgId: ext.msgId ?? '',
    queue: { ...queue, queueId },
    queueOffset: Number(ext.queueOffset ?? -1),
  };
}

/** Normalises LMQ names (adds the %LMQ% prefix) and checks what the broker would silently drop. */
export function lmqDispatchValue(lmqNames: readonly string[]): { names: string[]; value: string } {
  if (lmqNames.length === 0) throw new InvalidArgumentError('at least one LMQ name is required');
  const names = lmqNames.map((n) => (n.startsWith(LMQ_PREFIX) ? n : LMQ_PREFIX + n));
  for (const n of names) {
    if (n.length === LMQ_PREFIX.length) throw new InvalidArgumentError('LMQ name is empty');
    // The broker builds a file path from the name and skips names with a path separator.
    if (n.includes('/') || n.includes('\\')) throw new InvalidArgumentError(`LMQ name "${n}" contains a path separator; encode it first`);
    if (n.includes(LMQ_DISPATCH_SEPARATOR)) throw new InvalidArgumentError(`LMQ name "${n}" contains ","`);
    if (/[\u0001\u0002]/.test(n)) throw new InvalidArgumentError(`LMQ name "${n}" contains a property separator`);
  }
  if (new Set(names).size !== names.length) throw new InvalidArgumentError('LMQ names must be distinct');
  const value = names.join(LMQ_DISPATCH_SEPARATOR);
  if (Buffer.byteLength(value, 'utf8') > MAX_LMQ_DISPATCH_BYTES) {
    throw new InvalidArgumentError(`INNER_MULTI_DISPATCH would be ${Buffer.byteLength(value, 'utf8')} bytes; limit ${MAX_LMQ_DISPATCH_BYTES}`);
  }
  return { names, value };
}

/** Round-robin or by sharding key, skipping brokers that just failed when the key allows it. */
export class QueueSelector {
  private readonly counters = new Map<string, number>();

  select(topic: string, queues: readonly MessageQueue[], shardingKey: string | undefined, avoidBroker?: string): MessageQueue {
    if (queues.length === 0) throw new NoRouteError(topic, `topic ${topic} has no writable queue`);
    if (shardingKey !== undefined) return queues[queueIndexForKey(shardingKey, queues.length)] as MessageQueue;
    const start = this.counters.get(topic) ?? Math.floor(Math.random() * queues.length);
    this.counters.set(topic, (start + 1) % 0x7fffffff);
    for (let i = 0; i < queues.length; i++) {
      const q = queues[(start + i) % queues.length] as MessageQueue;
      if (q.brokerName !== avoidBroker) return q;
    }
    return queues[start % queues.length] as MessageQueue;
  }
}
