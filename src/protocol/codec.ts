import mqttPacket from 'mqtt-packet';
import type { Packet, ProtocolVersion } from './packets';
import { MqttError } from './errors';
import { ReasonCode } from './reason-codes';

/**
 * Decodes a byte stream into MQTT packets.
 *
 * mqtt-packet's parser buffers a whole packet before it looks at its size, so a
 * peer could make us buffer up to 256 MiB. FrameGuard reads each fixed header
 * first and refuses an oversize packet before any of its body is kept.
 */
export class PacketDecoder {
  private readonly parser = mqttPacket.parser({});
  private readonly packets: Packet[] = [];
  private parseError: Error | null = null;
  // Frame-boundary tracking: bytes still to skip in the current frame's body,
  // and the partial fixed header (type byte + remaining-length bytes) being read.
  private bodyBytesLeft = 0;
  private header: number[] = [];

  constructor(public maxPacketSize: number) {
    this.parser.on('packet', (p: Packet) => this.packets.push(p));
    this.parser.on('error', (e: Error) => {
      this.parseError ??= e;
    });
  }

  /** Feeds bytes; returns the complete packets they finish. Throws MqttError on bad input. */
  push(chunk: Buffer): Packet[] {
    this.checkFrames(chunk);
    this.parser.parse(chunk);
    if (this.parseError) {
      const e = this.parseError;
      // mqtt-packet reports a CONNECT protocol level it does not know as this error; the peer gets CONNACK 0x01 for it.
      const code = e.message === 'Invalid protocol version' ? ReasonCode.UnsupportedProtocolVersion : ReasonCode.MalformedPacket;
      throw new MqttError(code, `malformed packet: ${e.message}`);
    }
    if (this.packets.length === 0) return EMPTY;
    return this.packets.splice(0, this.packets.length);
  }

  private checkFrames(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.bodyBytesLeft > 0) {
        const n = Math.min(this.bodyBytesLeft, chunk.length - i);
        this.bodyBytesLeft -= n;
        i += n;
        continue;
      }
      this.header.push(chunk[i++]);
      if (this.header.length === 1) continue;
      const last = this.header[this.header.length - 1];
      if (last & 0x80) {
        if (this.header.length > 4) throw new MqttError(ReasonCode.MalformedPacket, 'malformed remaining length');
        continue;
      }
      let remaining = 0;
      for (let k = this.header.length - 1; k >= 1; k--) remaining = remaining * 128 + (this.header[k] & 0x7f);
      const total = this.header.length + remaining;
      if (total > this.maxPacketSize) {
        throw new MqttError(
          ReasonCode.PacketTooLarge,
          `packet of ${total} bytes exceeds the maximum packet size ${this.maxPacketSize}`,
        );
      }
      this.header = [];
      this.bodyBytesLeft = remaining;
    }
  }
}

const EMPTY: Packet[] = [];

/** Encodes a packet for the given protocol version. */
export function encodePacket(packet: Packet, protocolVersion: ProtocolVersion): Buffer {
  return mqttPacket.generate(packet, { protocolVersion });
}
