import type { PubrelPacket } from '../../protocol/packets';
import { ReasonCode } from '../../protocol/reason-codes';
import type { Channel } from '../channel';

/** PUBREL releases a received QoS 2 packet id; PUBCOMP waits until the release is durable. */
export function handlePubrel(ch: Channel, packet: PubrelPacket): void {
  const session = ch.session!;
  const packetId = packet.messageId!;
  const slot = ch.reserveReply();
  const received = session.inboundQos2.get(packetId);
  if (!received) {
    const reasonCode = ch.protocolVersion === 5 ? ReasonCode.PacketIdentifierNotFound : undefined;
    ch.fill(slot, { cmd: 'pubcomp', messageId: packetId, reasonCode });
    return;
  }
  received
    .then(() => ch.broker.releaseInbound(session, packetId))
    .then(
      () => {
        // A flow from an earlier connection was not counted on this one (MQTT 5 §4.9: quotas are per connection).
        if (ch.inboundQos2Counted.delete(packetId)) ch.inboundInflight--;
        ch.fill(slot, { cmd: 'pubcomp', messageId: packetId });
      },
      () => ch.fill(slot, null, true), // the id stays reserved; the client re-sends PUBREL on reconnect
    );
}
