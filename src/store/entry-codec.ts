// The embedded store's binary layout of a queue entry. Hand-written because the generic encoder
// (msgpack, lmdb's default) wrote every key name into every entry (244 bytes for a 64-byte
// payload) and its per-entry work was a tenth of the durable path's CPU; this layout is 112 bytes
// for the same entry and allocates nothing but the result's view.
//
//   u8  version (1)
//   u8  entry flags: bits 0-1 qos, 2 retainAsPublished, 3 state is 'pubrec', 4 shareGroup,
//       5 inline message (else messageId), 6 packetId
//   f64 seq
//   [u16 packetId]
//   u16 count, then u32 per subscription identifier
//   [str shareGroup]
//   inline message:
//     u8  message flags: bits 0-1 qos, 2 retain, 3 expiresAt, 4 movedFromMember, 5 properties
//     f64 createdAt, [f64 expiresAt], str topic, str publisherId, [properties], u32 + payload
//   else: f64 messageId
//
//   str = u32 byte length + UTF-8; properties = u8 presence bits (payloadFormatIndicator,
//   contentType, responseTopic, correlationData, userProperties) then each present one in that
//   order (u8, str, str, u32 + bytes, str of JSON: user property values are strings or arrays of
//   strings, which JSON keeps exactly).
import type { QoS, UserProperties } from '../protocol/packets';
import type { DeliveryState, Message, MessageProperties } from './types';

const VERSION = 1;

/** A queue entry as the embedded store keeps it: the message inline, or a reference to a shared one. */
export interface StoredQueueEntry {
  seq: number;
  packetId?: number;
  messageId?: number;
  message?: Message;
  qos: QoS;
  subscriptionIds: number[];
  retainAsPublished: boolean;
  state: DeliveryState;
  shareGroup?: string;
}

export class EntryCodecError extends Error {
  readonly reason = 'corrupt';
}

/**
 * Encodes into one growing scratch buffer. The result is a view of it, valid until the next
 * encode: LMDB copies it when the write runs, which inside a write transaction is at once.
 */
export class EntryEncoder {
  private buf = Buffer.allocUnsafe(4096);
  private pos = 0;

  encode(entry: StoredQueueEntry): Buffer {
    this.pos = 0;
    const m = entry.message;
    let flags = entry.qos | (entry.retainAsPublished ? 4 : 0) | (entry.state === 'pubrec' ? 8 : 0);
    if (entry.shareGroup !== undefined) flags |= 16;
    if (m !== undefined) flags |= 32;
    if (entry.packetId !== undefined) flags |= 64;
    this.ensure(16 + entry.subscriptionIds.length * 4);
    this.buf[this.pos++] = VERSION;
    this.buf[this.pos++] = flags;
    this.pos = this.buf.writeDoubleLE(entry.seq, this.pos);
    if (entry.packetId !== undefined) this.pos = this.buf.writeUInt16LE(entry.packetId, this.pos);
    this.pos = this.buf.writeUInt16LE(entry.subscriptionIds.length, this.pos);
    for (const id of entry.subscriptionIds) this.pos = this.buf.writeUInt32LE(id, this.pos);
    if (entry.shareGroup !== undefined) this.string(entry.shareGroup);
    if (m === undefined) {
      this.ensure(8);
      this.pos = this.buf.writeDoubleLE(entry.messageId ?? 0, this.pos);
      return this.buf.subarray(0, this.pos);
    }
    const props = m.properties;
    const mflags = m.qos | (m.retain ? 4 : 0) | (m.expiresAt !== undefined ? 8 : 0) | (m.movedFromMember ? 16 : 0) | (props ? 32 : 0);
    this.ensure(17);
    this.buf[this.pos++] = mflags;
    this.pos = this.buf.writeDoubleLE(m.createdAt, this.pos);
    if (m.expiresAt !== undefined) this.pos = this.buf.writeDoubleLE(m.expiresAt, this.pos);
    this.string(m.topic);
    this.string(m.publisherId);
    if (props) this.properties(props);
    this.bytes(m.payload);
    return this.buf.subarray(0, this.pos);
  }

  private properties(p: MessageProperties): void {
    const present =
      (p.payloadFormatIndicator !== undefined ? 1 : 0) |
      (p.contentType !== undefined ? 2 : 0) |
      (p.responseTopic !== undefined ? 4 : 0) |
      (p.correlationData !== undefined ? 8 : 0) |
      (p.userProperties !== undefined ? 16 : 0);
    this.ensure(2);
    this.buf[this.pos++] = present;
    if (p.payloadFormatIndicator !== undefined) this.buf[this.pos++] = p.payloadFormatIndicator ? 1 : 0;
    if (p.contentType !== undefined) this.string(p.contentType);
    if (p.responseTopic !== undefined) this.string(p.responseTopic);
    if (p.correlationData !== undefined) this.bytes(p.correlationData);
    if (p.userProperties !== undefined) this.string(JSON.stringify(p.userProperties));
  }

  private string(s: string): void {
    const max = s.length * 3; // UTF-8 bytes per UTF-16 unit, at most
    this.ensure(4 + max);
    const n = this.buf.write(s, this.pos + 4, 'utf8');
    this.buf.writeUInt32LE(n, this.pos);
    this.pos += 4 + n;
  }

  private bytes(b: Buffer): void {
    this.ensure(4 + b.length);
    this.pos = this.buf.writeUInt32LE(b.length, this.pos);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }
}

/** Reads one encoded entry. The payload and correlation data are copies: `data` may be reused. */
export function decodeEntry(data: Buffer): StoredQueueEntry {
  let pos = 0;
  const need = (n: number): void => {
    if (pos + n > data.length) throw new EntryCodecError(`queue entry truncated at byte ${pos} of ${data.length}`);
  };
  const u8 = (): number => {
    need(1);
    return data[pos++]!;
  };
  const u16 = (): number => {
    need(2);
    pos += 2;
    return data.readUInt16LE(pos - 2);
  };
  const u32 = (): number => {
    need(4);
    pos += 4;
    return data.readUInt32LE(pos - 4);
  };
  const f64 = (): number => {
    need(8);
    pos += 8;
    return data.readDoubleLE(pos - 8);
  };
  const bytes = (): Buffer => {
    const n = u32();
    need(n);
    pos += n;
    return Buffer.from(data.subarray(pos - n, pos));
  };
  const string = (): string => {
    const n = u32();
    need(n);
    pos += n;
    return data.toString('utf8', pos - n, pos);
  };

  const version = u8();
  if (version !== VERSION) throw new EntryCodecError(`queue entry has layout version ${version}; this build reads ${VERSION}`);
  const flags = u8();
  const entry: StoredQueueEntry = {
    seq: f64(),
    qos: (flags & 3) as QoS,
    subscriptionIds: [],
    retainAsPublished: (flags & 4) !== 0,
    state: flags & 8 ? 'pubrec' : 'queued',
  };
  if (flags & 64) entry.packetId = u16();
  const ids = u16();
  for (let i = 0; i < ids; i++) entry.subscriptionIds.push(u32());
  if (flags & 16) entry.shareGroup = string();
  if ((flags & 32) === 0) {
    entry.messageId = f64();
    return entry;
  }
  const mflags = u8();
  const createdAt = f64();
  const expiresAt = mflags & 8 ? f64() : undefined;
  const message: Message = { topic: string(), payload: Buffer.alloc(0), qos: (mflags & 3) as QoS, retain: (mflags & 4) !== 0, publisherId: string(), createdAt };
  if (expiresAt !== undefined) message.expiresAt = expiresAt;
  if (mflags & 16) message.movedFromMember = true;
  if (mflags & 32) {
    const present = u8();
    const p: MessageProperties = {};
    if (present & 1) p.payloadFormatIndicator = u8() === 1;
    if (present & 2) p.contentType = string();
    if (present & 4) p.responseTopic = string();
    if (present & 8) p.correlationData = bytes();
    if (present & 16) p.userProperties = JSON.parse(string()) as UserProperties;
    message.properties = p;
  }
  message.payload = bytes();
  if (pos !== data.length) throw new EntryCodecError(`queue entry has ${data.length - pos} bytes past its end`);
  entry.message = message;
  return entry;
}
