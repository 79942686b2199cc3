import { isUtf8 } from 'node:buffer';
import type { PublishPacket, PublishProperties } from '../../protocol/packets';
import { ReasonCode } from '../../protocol/reason-codes';
import { topicNameError } from '../../protocol/topics';
import { type Message, type MessageProperties, StoreError } from '../../store/types';
import type { Channel } from '../channel';

/** The properties that travel with a message; alias and subscription ids are per hop. */
export function messageProperties(props: PublishProperties | MessageProperties): MessageProperties | undefined {
  const out: MessageProperties = {};
  if (props.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = props.payloadFormatIndicator;
  if (props.contentType !== undefined) out.contentType = props.contentType;
  if (props.responseTopic !== undefined) out.responseTopic = props.responseTopic;
  if (props.correlationData !== undefined) out.correlationData = props.correlationData;
  if (props.userProperties !== undefined) out.userProperties = props.userProperties;
  return Object.keys(out).length > 0 ? out : undefined;
}

/**
 * Token buckets: each holds at most one second's worth and refills with the clock. A client
 * over either rate is disconnected (MQTT 5 0x96): it cannot be slowed by dropping, since QoS 1/2
 * messages must not be lost, and reading less from it only moves the flood into its socket.
 */
function withinRate(ch: Channel, bytes: number): boolean {
  const { maxPublishRate, maxPublishBytesRate } = ch.options;
  const now = ch.broker.clock.now();
  if (ch.publishTokensAt === 0) {
    ch.publishTokens = maxPublishRate;
    ch.publishByteTokens = maxPublishBytesRate;
  } else {
    const seconds = (now - ch.publishTokensAt) / 1000;
    ch.publishTokens = Math.min(maxPublishRate, ch.publishTokens + seconds * maxPublishRate);
    ch.publishByteTokens = Math.min(maxPublishBytesRate, ch.publishByteTokens + seconds * maxPublishBytesRate);
  }
  ch.publishTokensAt = now;
  if (maxPublishRate > 0) {
    if (ch.publishTokens < 1) return false;
    ch.publishTokens -= 1;
  }
  if (maxPublishBytesRate > 0) {
    if (ch.publishByteTokens < bytes) return false;
    ch.publishByteTokens -= bytes;
  }
  return true;
}

export function handlePublish(ch: Channel, packet: PublishPacket): void {
  const session = ch.session!;
  const v5 = ch.protocolVersion === 5;
  const props = packet.properties;
  let topic = packet.topic;

  const alias = props?.topicAlias;
  if (v5 && alias !== undefined) {
    if (alias === 0 || alias > ch.options.topicAliasMaximum) {
      return ch.close(ReasonCode.TopicAliasInvalid, `topic alias ${alias} is outside 1..${ch.options.topicAliasMaximum}`);
    }
    if (topic.length > 0) ch.inboundAliases.set(alias, topic);
    else {
      const known = ch.inboundAliases.get(alias);
      if (known === undefined) return ch.close(ReasonCode.ProtocolError, `topic alias ${alias} is not set`);
      topic = known;
    }
  }
  if (v5 && topic.length === 0) return ch.close(ReasonCode.ProtocolError, 'empty topic name without a topic alias'); // MQTT 5 §3.3.2.3.4
  const topicError = topicNameError(topic);
  if (topicError) return ch.close(ReasonCode.TopicNameInvalid, topicError);
  if (v5 && props?.subscriptionIdentifier !== undefined) {
    return ch.close(ReasonCode.ProtocolError, 'a client PUBLISH may not carry a subscription identifier'); // MQTT-3.3.4-6
  }
  if (v5 && props?.responseTopic !== undefined && topicNameError(props.responseTopic)) {
    return ch.close(ReasonCode.ProtocolError, 'response topic is not a valid topic name');
  }

  const qos = packet.qos;
  const packetId = packet.messageId ?? 0;
  if (qos > 0 && v5 && ch.inboundInflight >= ch.options.receiveMaximum) {
    return ch.close(ReasonCode.ReceiveMaximumExceeded, `more than ${ch.options.receiveMaximum} QoS 1/2 publishes in flight`);
  }
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
  if ((ch.options.maxPublishRate > 0 || ch.options.maxPublishBytesRate > 0) && !withinRate(ch, payload.length)) {
    ch.broker.stats.rateLimited++;
    ch.broker.log.warn({ clientId: ch.clientId, maxPublishRate: ch.options.maxPublishRate, maxPublishBytesRate: ch.options.maxPublishBytesRate }, 'client publishes too fast: disconnected');
    return ch.close(ReasonCode.MessageRateTooHigh, 'publish rate limit exceeded'); // 3.1.1: just closed
  }

  // QoS 2 duplicate: answer PUBREC again and do not forward (G2).
  const received = qos === 2 ? session.inboundQos2.get(packetId) : undefined;
  if (received) {
    const slot = ch.reserveReply();
    received.then(
      () => ch.fill(slot, { cmd: 'pubrec', messageId: packetId }),
      () => ch.fill(slot, null, true),
    );
    return;
  }

  let refusal: number | undefined;
  if (v5 && props?.payloadFormatIndicator && !isUtf8(payload)) refusal = ReasonCode.PayloadFormatInvalid;
  else if (!ch.mayPublish(topic)) refusal = ReasonCode.NotAuthorized;
  if (refusal !== undefined) {
    // MQTT 3.1.1 has no way to say no: acknowledge and drop, as §3.3.5 allows.
    if (qos === 1) ch.fill(ch.reserveReply(), { cmd: 'puback', messageId: packetId, reasonCode: v5 ? refusal : undefined });
    if (qos === 2) ch.fill(ch.reserveReply(), { cmd: 'pubrec', messageId: packetId, reasonCode: v5 ? refusal : undefined });
    return;
  }

  const now = ch.broker.clock.now();
  const message: Message = {
    topic,
    payload,
    qos,
    retain: packet.retain,
    properties: props ? messageProperties(props) : undefined,
    expiresAt: props?.messageExpiryInterval !== undefined ? now + props.messageExpiryInterval * 1000 : undefined,
    publisherId: ch.clientId,
    createdAt: now,
  };

  if (qos === 0) {
    void ch.broker.publish(message);
    return;
  }

  const slot = ch.reserveReply(payload.length); // held until stored: counts towards the read pause
  ch.inboundInflight++;
  const cmd = qos === 1 ? 'puback' : 'pubrec';
  const stored = ch.broker.publish(message, { session, qos2PacketId: qos === 2 ? packetId : undefined });
  if (qos === 2) {
    session.inboundQos2.set(packetId, stored);
    ch.inboundQos2Counted.add(packetId);
  }
  stored.then(
    () => {
      if (qos === 1) ch.inboundInflight--;
      ch.fill(slot, { cmd, messageId: packetId });
    },
    (e: Error) => {
      // Never acknowledge what was not stored (G1): MQTT 5 gets an error code, 3.1.1 a close so it re-sends.
      ch.inboundInflight--;
      if (qos === 2) {
        ch.inboundQos2Counted.delete(packetId);
        session.inboundQos2.delete(packetId);
      }
      ch.broker.log.warn({ clientId: ch.clientId, topic, err: e.message }, 'publish not stored');
      if (v5) {
        // A full store is a quota (0x97): the client may try again once subscribers drained it.
        const full = e instanceof StoreError && e.reason === 'full';
        const properties = ch.client.requestProblemInformation ? { reasonString: full ? 'the broker\'s store is full' : 'message could not be stored' } : undefined;
        ch.fill(slot, { cmd, messageId: packetId, reasonCode: full ? ReasonCode.QuotaExceeded : ReasonCode.UnspecifiedError, properties });
      } else ch.fill(slot, null, true);
    },
  );
}
