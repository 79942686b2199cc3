// Message types and the property string format (MessageDecoder.messageProperties2String):
// name \u0001 value \u0002, repeated. Neither separator may appear in a name or a value.
import { InvalidArgumentError } from './errors';

export const NAME_VALUE_SEPARATOR = '\u0001';
export const PROPERTY_SEPARATOR = '\u0002';

/** System property names (MessageConst). */
export const MessageProperty = {
  TAGS: 'TAGS',
  KEYS: 'KEYS',
  WAIT_STORE_MSG_OK: 'WAIT',
  UNIQ_KEY: 'UNIQ_KEY',
  SHARDING_KEY: '__SHARDINGKEY',
  INNER_MULTI_DISPATCH: 'INNER_MULTI_DISPATCH',
  INNER_MULTI_QUEUE_OFFSET: 'INNER_MULTI_QUEUE_OFFSET',
  MAX_OFFSET: 'MAX_OFFSET',
  MIN_OFFSET: 'MIN_OFFSET',
} as const;

export const LMQ_PREFIX = '%LMQ%';
export const LMQ_QUEUE_ID = 0;
export const LMQ_DISPATCH_SEPARATOR = ',';

/** Names the client sets itself; a user property with one of these names is refused. */
const RESERVED_NAMES: ReadonlySet<string> = new Set(Object.values(MessageProperty));

/** Stored property section is prefixed by an int16 length. */
export const MAX_PROPERTIES_BYTES = 32767;

export function isLmq(topic: string): boolean {
  return topic.startsWith(LMQ_PREFIX);
}

export interface OutgoingMessage {
  topic: string;
  body: Buffer | Uint8Array | string;
  tags?: string;
  keys?: string[];
  properties?: Record<string, string>;
  /**
   * Messages with the same sharding key go to the same queue of the topic, so their order holds.
   * Without one, queues are used round-robin.
   */
  shardingKey?: string;
  /**
   * The UNIQ_KEY to send with (16 to 64 hex characters); default: a new one. Give the same key when
   * sending a message again after a send whose outcome is unknown (a timeout), so that readers
   * can recognise the second copy.
   */
  uniqKey?: string;
  /** RocketMQ message flag (opaque int the broker stores). */
  flag?: number;
}

export interface Message {
  topic: string;
  queueId: number;
  /** Offset in the queue that was pulled (for an LMQ: the LMQ's own offset). */
  queueOffset: number;
  commitLogOffset: number;
  storeSize: number;
  bodyCrc: number;
  flag: number;
  sysFlag: number;
  bornTimestamp: number;
  bornHost: string;
  storeTimestamp: number;
  storeHost: string;
  reconsumeTimes: number;
  preparedTransactionOffset: number;
  /** 1 for MESSAGE_MAGIC_CODE (topic length in 1 byte), 2 for MESSAGE_MAGIC_CODE_V2 (2 bytes). */
  magicVersion: 1 | 2;
  body: Buffer;
  properties: Record<string, string>;
  tags?: string;
  keys: string[];
  /** Client-side unique id (UNIQ_KEY) if the producer set one. */
  uniqKey?: string;
  /** Broker message id: store host + commit-log offset, hex (MessageDecoder.createMessageId). */
  offsetMsgId: string;
}

function checkText(what: string, text: string): void {
  if (text.includes(NAME_VALUE_SEPARATOR) || text.includes(PROPERTY_SEPARATOR)) {
    throw new InvalidArgumentError(`${what} contains \\u0001 or \\u0002, which RocketMQ uses as property separators`);
  }
}

export function checkUserProperties(properties: Record<string, string> | undefined): void {
  if (!properties) return;
  for (const [name, value] of Object.entries(properties)) {
    if (name === '') throw new InvalidArgumentError('property name must not be empty');
    if (RESERVED_NAMES.has(name)) throw new InvalidArgumentError(`property name "${name}" is reserved by RocketMQ`);
    if (typeof value !== 'string') throw new InvalidArgumentError(`property "${name}" must be a string`);
    checkText(`property name "${name}"`, name);
    checkText(`value of property "${name}"`, value);
  }
}

export function encodeProperties(properties: Record<string, string>): string {
  let out = '';
  for (const [name, value] of Object.entries(properties)) {
    checkText(`property name "${name}"`, name);
    checkText(`value of property "${name}"`, value);
    out += name + NAME_VALUE_SEPARATOR + value + PROPERTY_SEPARATOR;
  }
  return out;
}

export function decodeProperties(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let index = 0;
  while (index < text.length) {
    let end = text.indexOf(PROPERTY_SEPARATOR, index);
    if (end < 0) end = text.length;
    const sep = text.indexOf(NAME_VALUE_SEPARATOR, index);
    if (sep >= 0 && sep < end) out[text.slice(index, sep)] = text.slice(sep + 1, end);
    index = end + 1;
  }
  return out;
}

export function bodyBuffer(body: Buffer | Uint8Array | string): Buffer {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (Buffer.isBuffer(body)) return body;
  return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}
