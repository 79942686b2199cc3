import type { AuthPacket } from '../../protocol/packets';
import { ReasonCode } from '../../protocol/reason-codes';
import type { Channel } from '../channel';

/**
 * No enhanced authentication method is offered (CONNECT with one gets 0x8C), so an AUTH
 * packet can only be a protocol error (MQTT 5 §4.12).
 */
export function handleAuth(ch: Channel, _packet: AuthPacket): void {
  ch.close(ReasonCode.ProtocolError, 'AUTH without an authentication method in CONNECT');
}
