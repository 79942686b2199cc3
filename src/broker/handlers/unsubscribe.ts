import type { UnsubscribePacket } from '../../protocol/packets';
import { ReasonCode } from '../../protocol/reason-codes';
import type { Channel } from '../channel';

export function handleUnsubscribe(ch: Channel, packet: UnsubscribePacket): void {
  if (packet.unsubscriptions.length === 0) return ch.close(ReasonCode.ProtocolError, 'UNSUBSCRIBE without a topic filter'); // MQTT-3.10.3-2
  const session = ch.session!;
  const slot = ch.reserveReply();
  const { existed, durable } = ch.broker.unsubscribe(session, packet.unsubscriptions);
  const reply = (codes: number[]) =>
    ch.fill(slot, {
      cmd: 'unsuback',
      messageId: packet.messageId,
      granted: ch.protocolVersion === 5 ? codes : [],
    });
  durable.then(
    () => reply(existed.map((e) => (e ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted))),
    () => {
      // MQTT 3.1.1 UNSUBACK has no reason codes: close rather than acknowledge what was not stored.
      if (ch.protocolVersion === 5) reply(existed.map(() => ReasonCode.UnspecifiedError));
      else ch.fill(slot, null, true);
    },
  );
}
