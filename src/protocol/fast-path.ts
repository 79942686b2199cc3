import type { Packet, ProtocolVersion, PublishPacket } from './packets';

/*
 * Hand-written encoding and decoding of the packets on the message hot path: PUBLISH
 * without properties and the four acknowledgements. Everything else, and every variant
 * these do not cover, goes through mqtt-packet. Measured against mqtt-packet, these
 * avoid its per-packet stream accumulator, buffer list and debug calls (docs/benchmarks.md).
 * test/unit/fast-path.test.ts checks that both produce the same bytes and packets.
 */

const ACK_TYPES = { puback: 4, pubrec: 5, pubrel: 6, pubcomp: 7 } as const;
type AckCmd = keyof typeof ACK_TYPES;
const ACK_CMDS: (AckCmd | undefined)[] = [undefined, undefined, undefined, undefined, 'puback', 'pubrec', 'pubrel', 'pubcomp'];

function isEmpty(properties: object | undefined): boolean {
  if (properties === undefined) return true;
  for (const key in properties) {
    if ((properties as Record<string, unknown>)[key] !== undefined) return false;
  }
  return true;
}

/** Encodes the packet if the fast path covers it, else returns null. */
export function fastEncode(packet: Packet, version: ProtocolVersion): Buffer | null {
  switch (packet.cmd) {
    case 'publish':
      if (version === 5 && !isEmpty(packet.properties)) return null;
      return encodePublish(packet, version);
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp': {
      if (version === 5 && ((packet.reasonCode ?? 0) !== 0 || !isEmpty(packet.properties))) return null;
      const id = packet.messageId ?? 0;
      const first = (ACK_TYPES[packet.cmd] << 4) | (packet.cmd === 'pubrel' ? 0x02 : 0);
      return Buffer.from([first, 2, id >> 8, id & 0xff]);
    }
    default:
      return null;
  }
}

function encodePublish(packet: PublishPacket, version: ProtocolVersion): Buffer | null {
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
  const topicLength = Buffer.byteLength(packet.topic);
  const hasId = packet.qos > 0;
  if (hasId && !packet.messageId) return null; // let mqtt-packet report it
  const remaining = 2 + topicLength + (hasId ? 2 : 0) + (version === 5 ? 1 : 0) + payload.length;
  const lengthBytes = remaining < 128 ? 1 : remaining < 16384 ? 2 : remaining < 2097152 ? 3 : 4;
  const buf = Buffer.allocUnsafe(1 + lengthBytes + remaining);
  buf[0] = 0x30 | (packet.dup ? 0x08 : 0) | (packet.qos << 1) | (packet.retain ? 0x01 : 0);
  let pos = 1;
  let n = remaining;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    buf[pos++] = byte;
  } while (n > 0);
  buf.writeUInt16BE(topicLength, pos);
  pos += 2;
  pos += buf.write(packet.topic, pos, 'utf8');
  if (hasId) {
    buf.writeUInt16BE(packet.messageId!, pos);
    pos += 2;
  }
  if (version === 5) buf[pos++] = 0; // no properties
  payload.copy(buf, pos);
  return buf;
}

/**
 * Decodes a whole frame if the fast path covers it, else returns null (the caller then asks
 * mqtt-packet, which also produces the error for a bad frame). `headerLength` is the size of
 * the fixed header.
 */
export function fastDecode(frame: Buffer, headerLength: number, version: ProtocolVersion | undefined): Packet | null {
  const first = frame[0];
  const type = first >> 4;
  if (type === 3) return decodePublish(frame, headerLength, version);
  const cmd = ACK_CMDS[type];
  if (cmd === undefined || frame.length !== 4) return null;
  if ((first & 0x0f) !== (cmd === 'pubrel' ? 0x02 : 0)) return null;
  const packet: { cmd: AckCmd; messageId: number; length: number; reasonCode?: number } = {
    cmd,
    messageId: frame.readUInt16BE(2),
    length: 2,
  };
  if (version === 5) packet.reasonCode = 0;
  return packet as Packet;
}

function decodePublish(frame: Buffer, pos: number, version: ProtocolVersion | undefined): Packet | null {
  const flags = frame[0] & 0x0f;
  const qos = (flags >> 1) & 0x03;
  if (qos === 3) return null;
  const length = frame.length - pos;
  if (pos + 2 > frame.length) return null;
  const topicLength = frame.readUInt16BE(pos);
  pos += 2;
  if (pos + topicLength > frame.length) return null;
  const topic = frame.toString('utf8', pos, pos + topicLength);
  pos += topicLength;
  let messageId: number | undefined;
  if (qos > 0) {
    if (pos + 2 > frame.length) return null;
    messageId = frame.readUInt16BE(pos);
    pos += 2;
  }
  if (version === 5) {
    if (pos >= frame.length || frame[pos] !== 0) return null; // properties: mqtt-packet reads them
    pos += 1;
  }
  // Copy: a subarray would pin the whole socket chunk for as long as the message is queued.
  const payload = Buffer.allocUnsafe(frame.length - pos);
  frame.copy(payload, 0, pos);
  const packet: PublishPacket = {
    cmd: 'publish',
    retain: (flags & 0x01) !== 0,
    qos: qos as 0 | 1 | 2,
    dup: (flags & 0x08) !== 0,
    length,
    topic,
    payload,
  };
  if (messageId !== undefined) packet.messageId = messageId;
  return packet;
}
