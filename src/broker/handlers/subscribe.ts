import type { SubscribePacket } from '../../protocol/packets';
import { ReasonCode } from '../../protocol/reason-codes';
import { parseSharedFilter, topicFilterError, topicMatches } from '../../protocol/topics';
import type { StoredSubscription } from '../../store/types';
import type { Channel } from '../channel';

export function handleSubscribe(ch: Channel, packet: SubscribePacket): void {
  if (packet.subscriptions.length === 0) return ch.close(ReasonCode.ProtocolError, 'SUBSCRIBE without a topic filter'); // MQTT-3.8.3-2
  const session = ch.session!;
  const v5 = ch.protocolVersion === 5;
  const subscriptionId = v5 ? packet.properties?.subscriptionIdentifier : undefined;
  if (subscriptionId === 0) return ch.close(ReasonCode.ProtocolError, 'subscription identifier 0'); // MQTT 5 §3.8.2.1.2
  const failure = v5 ? ReasonCode.TopicFilterInvalid : 0x80;
  const granted: number[] = [];
  const accepted: StoredSubscription[] = [];
  for (const request of packet.subscriptions) {
    const shared = parseSharedFilter(request.topic);
    const error = typeof shared === 'string' ? shared : shared ? null : topicFilterError(request.topic);
    if (error) {
      granted.push(failure);
      continue;
    }
    if (shared && request.nl) {
      return ch.close(ReasonCode.ProtocolError, 'No Local on a shared subscription'); // MQTT-3.8.3-4
    }
    const filter = shared && typeof shared !== 'string' ? shared.filter : request.topic;
    if (ch.options.denySubscribe.some((denied) => topicMatches(denied, filter))) {
      granted.push(ReasonCode.UnspecifiedError); // 0x80: MQTT 5 "Unspecified error", 3.1.1 "Failure"
      continue;
    }
    if (!ch.maySubscribe(request.topic)) {
      granted.push(v5 ? ReasonCode.NotAuthorized : 0x80);
      continue;
    }
    const sub: StoredSubscription = {
      filter: request.topic,
      qos: request.qos,
      noLocal: request.nl ?? false,
      retainAsPublished: request.rap ?? false,
      retainHandling: (request.rh ?? 0) as 0 | 1 | 2,
    };
    if (subscriptionId !== undefined) sub.subscriptionId = subscriptionId;
    accepted.push(sub);
    granted.push(request.qos);
  }
  const slot = ch.reserveReply();
  const { isNew, durable } = ch.broker.subscribe(session, accepted);
  durable.then(
    () => {
      ch.fill(slot, { cmd: 'suback', messageId: packet.messageId, granted });
      // Retained messages follow the SUBACK; none for shared subscriptions (MQTT 5 §4.8.2).
      accepted.forEach((sub, i) => {
        if (sub.filter.startsWith('$share/')) return;
        if (sub.retainHandling === 0 || (sub.retainHandling === 1 && isNew[i])) ch.broker.deliverRetained(session, sub);
      });
    },
    () => {
      if (v5) ch.fill(slot, { cmd: 'suback', messageId: packet.messageId, granted: granted.map(() => ReasonCode.UnspecifiedError) });
      else ch.fill(slot, null, true);
    },
  );
}
