import type { UnsubscribePacket } from '../../protocol/packets';
import { ReasonCode } from '../../protocol/reason-codes';
import type { Channel } from '../channel';

export function handleUnsubscribe(ch: Channel, packet: UnsubscribePacket): void {
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
    () => reply(existed.map(() => ReasonCode.UnspecifiedError)),
  );
}
