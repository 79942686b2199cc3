// An MQTT message as a RocketMQ message: body = the payload unchanged, the rest in properties.
// The property names are the bridge contract (docs/cluster.md §2): services read them.
import type { QoS } from '../protocol/packets';
import { topicNameError } from '../protocol/topics';
import type { Message as StoredRocketMessage } from '../rocketmq';
import type { Message, MessageProperties } from '../store/types';

/** The message layout: the bridge's contract with RocketMQ applications (docs/bridge.md). */
export const Prop = {
  topic: 'mqtt_topic',
  qos: 'mqtt_qos',
  retain: 'mqtt_retain',
  client: 'mqtt_client',
  createdAt: 'mqtt_created',
  expiresAt: 'mqtt_expiry_at',
  /** Downlink only: the MQTT 5 message expiry interval, seconds from when a node reads it. */
  expiryInterval: 'mqtt_expiry',
  payloadFormat: 'mqtt_payload_format',
  contentType: 'mqtt_content_type',
  responseTopic: 'mqtt_response_topic',
  /** base64 */
  correlationData: 'mqtt_correlation_data',
  /** JSON array of [name, value] pairs, in order (a name may repeat) */
  userProperties: 'mqtt_user_props',
  /** The payload was empty: RocketMQ cannot index an empty body into LMQs, so the body is one 0 byte. */
  empty: 'mqtt_empty',
  /** Re-sent to another member of a shared subscription by the node of a member that left. */
  moved: 'iotb_moved',
} as const;

/** A string property that holds U+0001 or U+0002 (RocketMQ's separators) travels as `<name>_b64`. */
const B64 = '_b64';
const SEPARATORS = /[\u0001\u0002]/;
const SIMPLE_TAG = /^[^\s|\u0001\u0002]+$/;

export interface EncodedMessage {
  body: Buffer;
  tags: string;
  keys: string[];
  properties: Record<string, string>;
}

function putString(properties: Record<string, string>, name: string, value: string): void {
  if (SEPARATORS.test(value)) properties[name + B64] = Buffer.from(value).toString('base64');
  else properties[name] = value;
}

function getString(properties: Record<string, string>, name: string): string | undefined {
  const plain = properties[name];
  if (plain !== undefined) return plain;
  const encoded = properties[name + B64];
  return encoded === undefined ? undefined : Buffer.from(encoded, 'base64').toString();
}

/** The RocketMQ body and properties of an MQTT message. */
export function encodeMessage(message: Message): EncodedMessage {
  const properties: Record<string, string> = {
    [Prop.qos]: String(message.qos),
    [Prop.retain]: message.retain ? '1' : '0',
    [Prop.createdAt]: String(message.createdAt),
  };
  putString(properties, Prop.topic, message.topic);
  putString(properties, Prop.client, message.publisherId);
  if (message.expiresAt !== undefined) properties[Prop.expiresAt] = String(message.expiresAt);
  const p = message.properties;
  if (p) {
    if (p.payloadFormatIndicator !== undefined) properties[Prop.payloadFormat] = p.payloadFormatIndicator ? '1' : '0';
    if (p.contentType !== undefined) putString(properties, Prop.contentType, p.contentType);
    if (p.responseTopic !== undefined) putString(properties, Prop.responseTopic, p.responseTopic);
    if (p.correlationData !== undefined) properties[Prop.correlationData] = p.correlationData.toString('base64');
    if (p.userProperties !== undefined) {
      const pairs: [string, string][] = [];
      for (const [name, value] of Object.entries(p.userProperties)) for (const v of Array.isArray(value) ? value : [value]) pairs.push([name, v]);
      properties[Prop.userProperties] = JSON.stringify(pairs); // JSON escapes the separators
    }
  }
  if (message.movedFromMember) properties[Prop.moved] = '1';
  let body = message.payload;
  if (body.length === 0) {
    body = Buffer.alloc(1);
    properties[Prop.empty] = '1';
  }
  const firstLevel = message.topic.split('/', 1)[0] ?? '';
  return {
    body,
    tags: SIMPLE_TAG.test(firstLevel) ? firstLevel : '_',
    keys: SIMPLE_TAG.test(message.publisherId) ? [message.publisherId] : [],
    properties,
  };
}

/** Why a RocketMQ message is not an MQTT message this cluster can deliver (foreign or malformed). */
export class Unreadable {
  constructor(readonly reason: string) {}
}

/**
 * The MQTT message of a RocketMQ message written by encodeMessage, or why it is not one. Any
 * RocketMQ application can write to the cluster's topics, so nothing here is trusted: a bad
 * message is refused with a reason, never thrown on (a throw would stall the reader on it).
 */
export function decodeMessage(stored: StoredRocketMessage, options: { downlink?: boolean } = {}): Message | Unreadable {
  try {
    return decodeOrThrow(stored, options.downlink);
  } catch (e) {
    return new Unreadable((e as Error).message);
  }
}

/**
 * `downlink`: written by a RocketMQ application, not by a node: QoS defaults to 1, the retain
 * flag may be `true`, an expiry may be relative (`mqtt_expiry`, seconds) and no publisher is set.
 */
function decodeOrThrow(stored: StoredRocketMessage, downlink = false): Message {
  const p = stored.properties;
  const topic = getString(p, Prop.topic);
  if (topic === undefined) throw new Error(`no ${Prop.topic} property`);
  const topicError = topicNameError(topic);
  if (topicError !== null) throw new Error(`${Prop.topic}: ${topicError}`);
  const qos = Number(p[Prop.qos] ?? (downlink ? 1 : NaN));
  if (!(qos === 0 || qos === 1 || qos === 2)) throw new Error(`${Prop.qos} is not 0, 1 or 2`);
  const retain = p[Prop.retain];
  if (retain !== undefined && !['0', '1', 'true', 'false'].includes(retain)) throw new Error(`${Prop.retain} is not 0 or 1`);
  const createdAt = Number(p[Prop.createdAt] ?? stored.bornTimestamp);
  const message: Message = {
    topic,
    payload: p[Prop.empty] === '1' ? Buffer.alloc(0) : stored.body,
    qos: qos as QoS,
    retain: retain === '1' || retain === 'true',
    publisherId: downlink ? '' : (getString(p, Prop.client) ?? ''),
    createdAt: downlink || !Number.isFinite(createdAt) ? Date.now() : createdAt,
  };
  if (p[Prop.expiresAt] !== undefined) message.expiresAt = finite(p[Prop.expiresAt], Prop.expiresAt);
  if (downlink && p[Prop.expiryInterval] !== undefined) {
    const seconds = finite(p[Prop.expiryInterval], Prop.expiryInterval);
    if (seconds < 0 || seconds > 0xffffffff) throw new Error(`${Prop.expiryInterval} is not between 0 and 4294967295 seconds`);
    message.expiresAt = message.createdAt + seconds * 1000;
  }
  if (p[Prop.moved] === '1') message.movedFromMember = true;
  const properties = decodeMqttProperties(p);
  if (properties) message.properties = properties;
  return message;
}

function finite(text: string, name: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new Error(`${name} is not a number`);
  return n;
}

/** The MQTT 5 properties of a stored message; undefined when it has none. */
function decodeMqttProperties(p: Record<string, string>): MessageProperties | undefined {
  const out: MessageProperties = {};
  let any = false;
  const format = p[Prop.payloadFormat];
  if (format !== undefined) {
    if (format !== '0' && format !== '1') throw new Error(`${Prop.payloadFormat} is not 0 or 1`);
    out.payloadFormatIndicator = format === '1';
    any = true;
  }
  const contentType = getString(p, Prop.contentType);
  if (contentType !== undefined) {
    out.contentType = contentType;
    any = true;
  }
  const responseTopic = getString(p, Prop.responseTopic);
  if (responseTopic !== undefined) {
    const error = topicNameError(responseTopic);
    if (error !== null) throw new Error(`${Prop.responseTopic}: ${error}`);
    out.responseTopic = responseTopic;
    any = true;
  }
  const correlation = p[Prop.correlationData];
  if (correlation !== undefined) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(correlation)) throw new Error(`${Prop.correlationData} is not base64`);
    out.correlationData = Buffer.from(correlation, 'base64');
    any = true;
  }
  const user = p[Prop.userProperties];
  if (user !== undefined) {
    const pairs = JSON.parse(user) as unknown;
    if (!Array.isArray(pairs)) throw new Error(`${Prop.userProperties} is not a JSON array`);
    const props: Record<string, string | string[]> = {};
    for (const pair of pairs as unknown[]) {
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
        throw new Error(`${Prop.userProperties} holds an entry that is not a [name, value] pair of strings`);
      }
      const [name, value] = pair as [string, string];
      const existing = props[name];
      if (existing === undefined) props[name] = value;
      else props[name] = Array.isArray(existing) ? [...existing, value] : [existing, value];
    }
    out.userProperties = props;
    any = true;
  }
  return any ? out : undefined;
}
