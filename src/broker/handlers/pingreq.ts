import type { Channel } from '../channel';

export function handlePingreq(ch: Channel): void {
  ch.send({ cmd: 'pingresp' });
}
