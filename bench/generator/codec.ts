// Hot-path MQTT 3.1.1 encoders. Everything else (CONNECT, SUBSCRIBE, parsing) goes through mqtt-packet;
// these few frames are hand-encoded because the generator builds one per message. test/bench checks
// that they are byte-identical to mqtt-packet's generate().
import type { QoS } from '../types';

/** Payload header: publisher id (u32), sequence (u32), send time in ms from performance.now() (f64). */
export const HEADER_BYTES = 16;

export function varIntLength(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

function writeVarInt(buf: Buffer, offset: number, n: number): number {
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    buf[offset++] = b;
  } while (n > 0);
  return offset;
}

/** Pre-encoded topic of one publisher, so each publish only writes header, id and payload. */
export class PublishEncoder {
  private readonly topic: Buffer;
  private readonly padding: Buffer;

  constructor(topic: string, readonly qos: QoS, readonly payloadBytes: number) {
    if (payloadBytes < HEADER_BYTES) throw new Error(`payload must be >= ${HEADER_BYTES} bytes`);
    this.topic = Buffer.from(topic, 'utf8');
    this.padding = Buffer.alloc(payloadBytes - HEADER_BYTES, 0x61);
  }

  encode(pubId: number, seq: number, sentAt: number, packetId: number): Buffer {
    const remaining = 2 + this.topic.length + (this.qos > 0 ? 2 : 0) + this.payloadBytes;
    const buf = Buffer.allocUnsafe(1 + varIntLength(remaining) + remaining);
    buf[0] = 0x30 | (this.qos << 1);
    let o = writeVarInt(buf, 1, remaining);
    buf.writeUInt16BE(this.topic.length, o);
    o += 2;
    o += this.topic.copy(buf, o);
    if (this.qos > 0) {
      buf.writeUInt16BE(packetId, o);
      o += 2;
    }
    buf.writeUInt32BE(pubId >>> 0, o);
    buf.writeUInt32BE(seq >>> 0, o + 4);
    buf.writeDoubleBE(sentAt, o + 8);
    this.padding.copy(buf, o + HEADER_BYTES);
    return buf;
  }
}

export interface PayloadHeader {
  pubId: number;
  seq: number;
  sentAt: number;
}

/** Reads the header; returns null when the payload is too short to be one of ours. */
export function readHeader(payload: Buffer): PayloadHeader | null {
  if (payload.length < HEADER_BYTES) return null;
  return { pubId: payload.readUInt32BE(0), seq: payload.readUInt32BE(4), sentAt: payload.readDoubleBE(8) };
}

function ack(first: number, id: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b[0] = first;
  b[1] = 2;
  b.writeUInt16BE(id, 2);
  return b;
}
export const puback = (id: number): Buffer => ack(0x40, id);
export const pubrec = (id: number): Buffer => ack(0x50, id);
export const pubrel = (id: number): Buffer => ack(0x62, id);
export const pubcomp = (id: number): Buffer => ack(0x70, id);
