import type { Packet } from '../../protocol/packets';
import { ReasonCode } from '../../protocol/reason-codes';
import type { Channel } from '../channel';
import { handleAuth } from './auth';
import { handleConnect } from './connect';
import { handleDisconnect } from './disconnect';
import { handlePingreq } from './pingreq';
import { handlePuback, handlePubcomp, handlePubrec } from './outbound-acks';
import { handlePublish } from './publish';
import { handlePubrel } from './pubrel';
import { handleSubscribe } from './subscribe';
import { handleUnsubscribe } from './unsubscribe';

/** Routes a decoded packet to its handler. Packets only a server sends are protocol errors. */
export function dispatch(ch: Channel, packet: Packet): void {
  switch (packet.cmd) {
    case 'connect':
      return handleConnect(ch, packet);
    case 'publish':
      return handlePublish(ch, packet);
    case 'puback':
      return handlePuback(ch, packet);
    case 'pubrec':
      return handlePubrec(ch, packet);
    case 'pubrel':
      return handlePubrel(ch, packet);
    case 'pubcomp':
      return handlePubcomp(ch, packet);
    case 'subscribe':
      return handleSubscribe(ch, packet);
    case 'unsubscribe':
      return handleUnsubscribe(ch, packet);
    case 'pingreq':
      return handlePingreq(ch);
    case 'disconnect':
      return handleDisconnect(ch, packet);
    case 'auth':
      return handleAuth(ch, packet);
    default:
      return ch.close(ReasonCode.ProtocolError, `a client may not send ${packet.cmd}`);
  }
}
