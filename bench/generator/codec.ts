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

/** Reads the payload header in place, without slicing. Returns false when the payload is too short. */
export function readHeaderAt(buf: Buffer, start: number, end: number, out: PayloadHeader): boolean {
  if (end - start < HEADER_BYTES) return false;
  out.pubId = buf.readUInt32BE(start);
  out.seq = buf.readUInt32BE(start + 4);
  out.sentAt = buf.readDoubleBE(start + 8);
  return true;
}

export const PUBLISH = 3;
export const PUBACK = 4;
export const PUBREC = 5;
export const PUBREL = 6;
export const PUBCOMP = 7;

export interface FrameSink {
  /** A PUBLISH frame; the payload is buf[payloadStart, end). */
  publish(qos: QoS, packetId: number, buf: Buffer, payloadStart: number, end: number): void;
  /** PUBACK / PUBREC / PUBREL / PUBCOMP (type 4..7). */
  ack(type: number, packetId: number): void;
  /** Any other complete frame, to be decoded by mqtt-packet. */
  other(frame: Buffer): void;
  error(msg: string): void;
}

/**
 * Splits a TCP byte stream into MQTT frames. The per-message frames (PUBLISH and its acks) are
 * decoded in place; every other frame is handed over whole, for mqtt-packet to parse.
 */
export class FrameReader {
  private pending: Buffer | null = null;

  constructor(private readonly sink: FrameSink) {}

  push(chunk: Buffer): void {
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    let o = 0;
    const n = buf.length;
    while (n - o >= 2) {
      let len = 0;
      let mul = 1;
      let i = o + 1;
      let complete = false;
      for (let k = 0; k < 4 && i < n; k++) {
        const b = buf[i++];
        len += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (i - o - 1 >= 4) {
          this.sink.error('malformed remaining length');
          return;
        }
        break;
      }
      const end = i + len;
      if (end > n) break;
      const first = buf[o];
      const type = first >> 4;
      if (type === PUBLISH) {
        const qos = ((first >> 1) & 3) as QoS;
        const topicLen = buf.readUInt16BE(i);
        let p = i + 2 + topicLen;
        let pid = 0;
        if (qos > 0) {
          pid = buf.readUInt16BE(p);
          p += 2;
        }
        this.sink.publish(qos, pid, buf, p, end);
      } else if (type >= PUBACK && type <= PUBCOMP && len >= 2) {
        this.sink.ack(type, buf.readUInt16BE(i));
      } else {
        this.sink.other(buf.subarray(o, end));
      }
      o = end;
    }
    if (o < n) this.pending = buf.subarray(o);
  }
}
