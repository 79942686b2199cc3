import type { DisconnectPacket } from '../../protocol/packets';
import { ReasonCode } from '../../protocol/reason-codes';
import type { Channel } from '../channel';

export function handleDisconnect(ch: Channel, packet: DisconnectPacket): void {
  const requestedExpiry = packet.properties?.sessionExpiryInterval;
  if (requestedExpiry !== undefined && ch.connectExpiryInterval === 0 && requestedExpiry !== 0) {
    // MQTT-3.14.2-2: a session that was to end with the connection may not be extended now.
    ch.close(ReasonCode.ProtocolError, 'session expiry interval was 0 at CONNECT');
    return;
  }
  const expiry =
    requestedExpiry === undefined ? undefined : Math.min(requestedExpiry, ch.options.maxSessionExpiryInterval);
  // Only a normal disconnection (0x00) deletes the will; 0x04 and error codes publish it (MQTT-3.1.2-10).
  const withWill = ch.protocolVersion === 5 && (packet.reasonCode ?? ReasonCode.Success) !== ReasonCode.Success;
  ch.closeByClient(!withWill, expiry);
}
