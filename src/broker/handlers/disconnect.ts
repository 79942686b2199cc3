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
  const withWill = ch.protocolVersion === 5 && packet.reasonCode === ReasonCode.DisconnectWithWill;
  ch.closeByClient(!withWill, expiry);
}
