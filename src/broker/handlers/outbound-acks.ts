import type { PubackPacket, PubcompPacket, PubrecPacket } from '../../protocol/packets';
import { ReasonCode } from '../../protocol/reason-codes';
import type { Channel } from '../channel';

// Acknowledgements from the client for deliveries we sent (QoS 1 and 2 outbound).

export function handlePuback(ch: Channel, packet: PubackPacket): void {
  const session = ch.session!;
  const entry = session.outbound.inflightEntry(packet.messageId!);
  if (!entry || entry.qos !== 1) return; // unknown id: nothing to do (MQTT 5 §4.3.2)
  ch.broker.finishDelivery(session, entry);
  ch.pump();
}

export function handlePubrec(ch: Channel, packet: PubrecPacket): void {
  const session = ch.session!;
  const packetId = packet.messageId!;
  const entry = session.outbound.inflightEntry(packetId);
  if (!entry || entry.qos !== 2) {
    if (ch.protocolVersion === 5) {
      ch.send({ cmd: 'pubrel', messageId: packetId, reasonCode: ReasonCode.PacketIdentifierNotFound });
    }
    return;
  }
  if ((packet.reasonCode ?? 0) >= 0x80) {
    // The client refused the message: the delivery is over (MQTT 5 §4.3.3).
    ch.broker.finishDelivery(session, entry);
    ch.pump();
    return;
  }
  // PUBREL only once the PUBREC state is durable: after a crash the PUBLISH would be re-sent
  // to a client that may have completed the flow already, a duplicate (G4).
  const slot = ch.reserveReply();
  const durable = entry.state === 'queued' ? ch.broker.markReleased(session, entry) : Promise.resolve();
  durable.then(
    () => ch.fill(slot, { cmd: 'pubrel', messageId: packetId }),
    () => ch.fill(slot, null, true),
  );
}

export function handlePubcomp(ch: Channel, packet: PubcompPacket): void {
  const session = ch.session!;
  const entry = session.outbound.inflightEntry(packet.messageId!);
  if (!entry || entry.qos !== 2 || entry.state !== 'pubrec') return;
  ch.broker.finishDelivery(session, entry);
  ch.pump();
}
