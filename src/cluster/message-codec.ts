// An MQTT message as a RocketMQ message: body = the payload unchanged, the rest in properties.
// The property names are the bridge contract (docs/cluster.md §2): services read them.
import type { QoS } from '../protocol/packets';
import { topicNameError } from '../protocol/topics';
import type { Message as StoredRocketMessage } from '../rocketmq';
import type { Message, MessageProperties } from '../store/types';

export const Prop = {
  topic: 'mqtt_topic',
  /** Set instead of mqtt_topic when the topic holds U+0001 or U+0002 (RocketMQ's separators). */
  topicBase64: 'mqtt_topic_b64',
  qos: 'mqtt_qos',
  retain: 'mqtt_retain',
  client: 'mqtt_client',
  createdAt: 'mqtt_created',
  expiresAt: 'mqtt_expiry_at',
  properties: 'mqtt_props',
  /** The payload was empty: RocketMQ cannot index an empty body into LMQs, so the body is one 0 byte. */
  empty: 'mqtt_empty',
  /** Re-sent to another member of a shared subscription by the node of a member that left. */
  moved: 'iotb_moved',
} as const;

const SEPARATORS = /[\u0001\u0002]/;
const SIMPLE_TAG = /^[^\s|\u0001\u0002]+$/;

export interface EncodedMessage {
  body: Buffer;
  tags: string;
  keys: string[];
  properties: Record<string, string>;
}

/** The RocketMQ body and properties of an MQTT message. */
export function encodeMessage(message: Message): EncodedMessage {
  const properties: Record<string, string> = {
    [Prop.qos]: String(message.qos),
    [Prop.retain]: message.retain ? '1' : '0',
    [Prop.createdAt]: String(message.createdAt),
  };
  if (SEPARATORS.test(message.topic)) properties[Prop.topicBase64] = Buffer.from(message.topic).toString('base64');
  else properties[Prop.topic] = message.topic;
  // JSON escapes control characters, so the client id and MQTT 5 properties are always safe.
  properties[Prop.client] = JSON.stringify(message.publisherId);
  if (message.expiresAt !== undefined) properties[Prop.expiresAt] = String(message.expiresAt);
  if (message.properties) properties[Prop.properties] = JSON.stringify(encodeMqttProperties(message.properties));
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
export function decodeMessage(stored: StoredRocketMessage): Message | Unreadable {
  try {
    return decodeOrThrow(stored);
  } catch (e) {
    return new Unreadable((e as Error).message);
  }
}

function decodeOrThrow(stored: StoredRocketMessage): Message {
  const p = stored.properties;
  const topic = p[Prop.topic] ?? (p[Prop.topicBase64] !== undefined ? Buffer.from(p[Prop.topicBase64], 'base64').toString() : undefined);
  if (topic === undefined) throw new Error(`no ${Prop.topic} property`);
  const topicError = topicNameError(topic);
  if (topicError !== null) throw new Error(`${Prop.topic}: ${topicError}`);
  const qos = Number(p[Prop.qos]);
  if (!(qos === 0 || qos === 1 || qos === 2)) throw new Error(`${Prop.qos} is not 0, 1 or 2`);
  const publisherId = p[Prop.client] !== undefined ? JSON.parse(p[Prop.client]) as unknown : '';
  if (typeof publisherId !== 'string') throw new Error(`${Prop.client} is not a JSON string`);
  const createdAt = Number(p[Prop.createdAt] ?? stored.bornTimestamp);
  const message: Message = {
    topic,
    payload: p[Prop.empty] === '1' ? Buffer.alloc(0) : stored.body,
    qos: qos as QoS,
    retain: p[Prop.retain] === '1',
    publisherId,
    createdAt: Number.isFinite(createdAt) ? createdAt : stored.bornTimestamp,
  };
  if (p[Prop.expiresAt] !== undefined) {
    const expiresAt = Number(p[Prop.expiresAt]);
    if (!Number.isFinite(expiresAt)) throw new Error(`${Prop.expiresAt} is not a number`);
    message.expiresAt = expiresAt;
  }
  if (p[Prop.moved] === '1') message.movedFromMember = true;
  if (p[Prop.properties] !== undefined) message.properties = decodeMqttProperties(p[Prop.properties]);
  return message;
}

interface MqttPropertiesJson {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  /** base64 */
  correlationData?: string;
  /** name/value pairs in order; a name may repeat */
  userProperties?: [string, string][];
}

function encodeMqttProperties(props: MessageProperties): MqttPropertiesJson {
  const out: MqttPropertiesJson = {};
  if (props.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = props.payloadFormatIndicator;
  if (props.contentType !== undefined) out.contentType = props.contentType;
  if (props.responseTopic !== undefined) out.responseTopic = props.responseTopic;
  if (props.correlationData !== undefined) out.correlationData = props.correlationData.toString('base64');
  if (props.userProperties !== undefined) {
    out.userProperties = [];
    for (const [name, value] of Object.entries(props.userProperties)) {
      for (const v of Array.isArray(value) ? value : [value]) out.userProperties.push([name, v]);
    }
  }
  return out;
}

function decodeMqttProperties(text: string): MessageProperties {
  const json = JSON.parse(text) as unknown;
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${Prop.properties} is not a JSON object`);
  const j = json as Record<string, unknown>;
  const out: MessageProperties = {};
  const str = (name: string): string | undefined => {
    const value = j[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw new Error(`${Prop.properties}.${name} is not a string`);
    return value;
  };
  if (j.payloadFormatIndicator !== undefined) {
    if (typeof j.payloadFormatIndicator !== 'boolean') throw new Error(`${Prop.properties}.payloadFormatIndicator is not a boolean`);
    out.payloadFormatIndicator = j.payloadFormatIndicator;
  }
  const contentType = str('contentType');
  if (contentType !== undefined) out.contentType = contentType;
  const responseTopic = str('responseTopic');
  if (responseTopic !== undefined) {
    const error = topicNameError(responseTopic);
    if (error !== null) throw new Error(`${Prop.properties}.responseTopic: ${error}`);
    out.responseTopic = responseTopic;
  }
  const correlationData = str('correlationData');
  if (correlationData !== undefined) out.correlationData = Buffer.from(correlationData, 'base64');
  if (j.userProperties !== undefined) {
    if (!Array.isArray(j.userProperties)) throw new Error(`${Prop.properties}.userProperties is not an array`);
    const user: Record<string, string | string[]> = {};
    for (const pair of j.userProperties as unknown[]) {
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
        throw new Error(`${Prop.properties}.userProperties holds an entry that is not a [name, value] pair of strings`);
      }
      const [name, value] = pair as [string, string];
      const existing = user[name];
      if (existing === undefined) user[name] = value;
      else user[name] = Array.isArray(existing) ? [...existing, value] : [existing, value];
    }
    out.userProperties = user;
  }
  return out;
}
