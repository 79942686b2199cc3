// Decodes the stored-message format a pull response carries (MessageDecoder.decode in apache/rocketmq):
//  int32 totalSize, int32 magic, int32 bodyCRC, int32 queueId, int32 flag, int64 queueOffset,
//  int64 physicalOffset, int32 sysFlag, int64 bornTimestamp, bornHost (4|16 bytes + int32 port),
//  int64 storeTimestamp, storeHost (4|16 bytes + int32 port), int32 reconsumeTimes,
//  int64 preparedTransactionOffset, int32 bodyLen + body, topic (v1: int8 len, v2: int16 len),
//  int16 propertiesLen + properties.
import * as zlib from 'node:zlib';
import { MessageDecodeError } from './errors';
import { LMQ_DISPATCH_SEPARATOR, LMQ_QUEUE_ID, Message, MessageProperty, decodeProperties, isLmq } from './message';

export const MESSAGE_MAGIC_CODE = -626843481;
export const MESSAGE_MAGIC_CODE_V2 = -626843477;

export const MessageSysFlag = {
  COMPRESSED: 0x1,
  MULTI_TAGS: 0x1 << 1,
  BORNHOST_V6: 0x1 << 4,
  STOREHOST_V6: 0x1 << 5,
  COMPRESSION_LZ4: 0x1 << 8,
  COMPRESSION_ZSTD: 0x2 << 8,
  COMPRESSION_ZLIB: 0x3 << 8,
  COMPRESSION_TYPE_MASK: 0x7 << 8,
} as const;

/** Upper bound for a decompressed body, so a small compressed body cannot exhaust memory. */
export const MAX_DECOMPRESSED_BODY_BYTES = 64 * 1024 * 1024;

// A pull response usually carries messages from a handful of hosts; cache their text forms.
const ipv4HostCache = new Map<number, { text: string; hex: string }>();

function ipv4Host(buf: Buffer, offset: number): { text: string; hex: string } {
  const ip = buf.readUInt32BE(offset);
  const port = buf.readInt32BE(offset + 4);
  const key = ip * 65536 + (port & 0xffff);
  let entry = ipv4HostCache.get(key);
  if (entry === undefined) {
    if (ipv4HostCache.size >= 4096) ipv4HostCache.clear();
    entry = {
      text: `${buf[offset]}.${buf[offset + 1]}.${buf[offset + 2]}.${buf[offset + 3]}:${port}`,
      hex: buf.toString('hex', offset, offset + 8).toUpperCase(),
    };
    ipv4HostCache.set(key, entry);
  }
  return entry;
}

function hostInfo(buf: Buffer, offset: number, ipLength: 4 | 16): { text: string; hex: string } {
  if (ipLength === 4) return ipv4Host(buf, offset);
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(offset + i).toString(16));
  return { text: `[${groups.join(':')}]:${buf.readInt32BE(offset + 16)}`, hex: buf.toString('hex', offset, offset + 20).toUpperCase() };
}

/** LZ4 block decompression (the format lz4-java writes inside LZ4FrameOutputStream). */
function lz4DecompressBlock(src: Buffer, out: Buffer, outPos: number, limit: number): number {
  let s = 0;
  let o = outPos;
  while (s < src.length) {
    const token = src[s++] as number;
    let literalLength = token >>> 4;
    if (literalLength === 15) {
      let b: number;
      do {
        if (s >= src.length) throw new MessageDecodeError('lz4: truncated literal length');
        b = src[s++] as number;
        literalLength += b;
      } while (b === 255);
    }
    if (s + literalLength > src.length || o + literalLength > limit) throw new MessageDecodeError('lz4: literal overrun');
    src.copy(out, o, s, s + literalLength);
    s += literalLength;
    o += literalLength;
    if (s >= src.length) break; // last sequence has literals only
    if (s + 2 > src.length) throw new MessageDecodeError('lz4: truncated match offset');
    const matchOffset = (src[s] as number) | ((src[s + 1] as number) << 8);
    s += 2;
    if (matchOffset === 0 || o - matchOffset < 0) {
      throw new MessageDecodeError('lz4: invalid match offset');
    }
    let matchLength = token & 0x0f;
    if (matchLength === 15) {
      let b: number;
      do {
        if (s >= src.length) throw new MessageDecodeError('lz4: truncated match length');
        b = src[s++] as number;
        matchLength += b;
      } while (b === 255);
    }
    matchLength += 4;
    if (o + matchLength > limit) throw new MessageDecodeError('lz4: output exceeds limit');
    for (let i = 0; i < matchLength; i++, o++) out[o] = out[o - matchOffset] as number;
  }
  return o;
}

const LZ4_FRAME_MAGIC = 0x184d2204;
const BLOCK_MAX_SIZES = [0, 0, 0, 0, 64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024];

/** LZ4 frame format (magic 0x184D2204), as lz4-java's LZ4FrameOutputStream writes it. */
export function lz4FrameDecompress(src: Buffer, maxOutput: number = MAX_DECOMPRESSED_BODY_BYTES): Buffer {
  if (src.length < 7 || src.readUInt32LE(0) !== LZ4_FRAME_MAGIC) throw new MessageDecodeError('lz4: not an LZ4 frame');
  const flg = src[4] as number;
  const bd = src[5] as number;
  const blockChecksum = (flg & 0x10) !== 0;
  const contentSize = (flg & 0x08) !== 0;
  const dictId = (flg & 0x01) !== 0;
  let s = 6 + (contentSize ? 8 : 0) + (dictId ? 4 : 0) + 1; // + header checksum byte
  const blockMax = BLOCK_MAX_SIZES[(bd >>> 4) & 0x7] ?? 0;
  if (blockMax === 0) throw new MessageDecodeError('lz4: invalid block size');
  const parts: Buffer[] = [];
  let total = 0;
  for (let blocks = 0; blocks < 1_000_000; blocks++) {
    if (s + 4 > src.length) throw new MessageDecodeError('lz4: truncated frame');
    const word = src.readUInt32LE(s);
    s += 4;
    if (word === 0) break; // end mark
    const size = word & 0x7fffffff;
    const uncompressed = (word & 0x80000000) !== 0;
    if (s + size > src.length) throw new MessageDecodeError('lz4: truncated block');
    const data = src.subarray(s, s + size);
    s += size + (blockChecksum ? 4 : 0);
    let block: Buffer;
    if (uncompressed) {
      block = data;
    } else {
      const out = Buffer.allocUnsafe(blockMax);
      const end = lz4DecompressBlock(data, out, 0, blockMax);
      block = out.subarray(0, end);
    }
    total += block.length;
    if (total > maxOutput) throw new MessageDecodeError(`lz4: decompressed body exceeds ${maxOutput} bytes`);
    parts.push(block);
  }
  return Buffer.concat(parts, total);
}

export function decompressBody(body: Buffer, sysFlag: number): Buffer {
  const type = (sysFlag & MessageSysFlag.COMPRESSION_TYPE_MASK) >>> 8;
  try {
    switch (type) {
      case 0: // older clients: compressed flag without a type means zlib
      case 3:
        return zlib.inflateSync(body, { maxOutputLength: MAX_DECOMPRESSED_BODY_BYTES });
      case 1:
        return lz4FrameDecompress(body);
      case 2:
        throw new MessageDecodeError('zstd-compressed bodies are not supported by this client (Node 20 has no zstd)');
      default:
        throw new MessageDecodeError(`unknown compression type ${type}`);
    }
  } catch (err) {
    if (err instanceof MessageDecodeError) throw err;
    throw new MessageDecodeError(`cannot decompress body: ${(err as Error).message}`);
  }
}

/** int64 as a JS number (exact below 2^53, which offsets and timestamps stay under); no BigInt on the hot path. */
function readLong(buf: Buffer, offset: number): number {
  return buf.readInt32BE(offset) * 4294967296 + buf.readUInt32BE(offset + 4);
}

function need(p: number, n: number, end: number, offset: number, what: string): void {
  if (p + n > end) throw new MessageDecodeError(`message at ${offset} truncated reading ${what}`);
}

/** Decodes one stored message starting at `offset`; returns it and the offset of the next one. */
export function decodeMessage(buf: Buffer, offset: number): { message: Message; next: number } {
  if (offset + 8 > buf.length) throw new MessageDecodeError(`truncated message at ${offset}`);
  const storeSize = buf.readInt32BE(offset);
  if (storeSize < 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 4 + 1 + 2 || offset + storeSize > buf.length) {
    throw new MessageDecodeError(`invalid message size ${storeSize} at ${offset} (buffer ${buf.length})`);
  }
  const end = offset + storeSize;
  const magic = buf.readInt32BE(offset + 4);
  let magicVersion: 1 | 2;
  if (magic === MESSAGE_MAGIC_CODE) magicVersion = 1;
  else if (magic === MESSAGE_MAGIC_CODE_V2) magicVersion = 2;
  else throw new MessageDecodeError(`unknown message magic code ${magic} at ${offset}`);
  let p = offset + 8;
  need(p, 4 + 4 + 4 + 8 + 8 + 4 + 8, end, offset, 'fixed fields');
  const bodyCrc = buf.readInt32BE(p);
  const queueId = buf.readInt32BE(p + 4);
  const flag = buf.readInt32BE(p + 8);
  let queueOffset = readLong(buf, p + 12);
  const commitLogOffset = readLong(buf, p + 20);
  let sysFlag = buf.readInt32BE(p + 28);
  const bornTimestamp = readLong(buf, p + 32);
  p += 40;
  const bornIpLength = (sysFlag & MessageSysFlag.BORNHOST_V6) === 0 ? 4 : 16;
  need(p, bornIpLength + 4 + 8, end, offset, 'born host');
  const bornHost = hostInfo(buf, p, bornIpLength).text;
  p += bornIpLength + 4;
  const storeTimestamp = readLong(buf, p);
  p += 8;
  const storeIpLength = (sysFlag & MessageSysFlag.STOREHOST_V6) === 0 ? 4 : 16;
  need(p, storeIpLength + 4, end, offset, 'store host');
  const storeHostInfo = hostInfo(buf, p, storeIpLength);
  p += storeIpLength + 4;
  need(p, 4 + 8 + 4, end, offset, 'reconsume times / body length');
  const reconsumeTimes = buf.readInt32BE(p);
  const preparedTransactionOffset = readLong(buf, p + 4);
  const bodyLength = buf.readInt32BE(p + 12);
  p += 16;
  if (bodyLength < 0) throw new MessageDecodeError(`negative body length at ${offset}`);
  need(p, bodyLength, end, offset, 'body');
  // Copy so that a kept message does not pin the whole response buffer.
  let body: Buffer = Buffer.allocUnsafe(bodyLength);
  buf.copy(body, 0, p, p + bodyLength);
  p += bodyLength;
  if ((sysFlag & MessageSysFlag.COMPRESSED) !== 0 && bodyLength > 0) {
    body = decompressBody(body, sysFlag);
    sysFlag &= ~MessageSysFlag.COMPRESSED;
  }
  let topicLength: number;
  if (magicVersion === 1) {
    need(p, 1, end, offset, 'topic length');
    topicLength = buf.readUInt8(p);
    p += 1;
  } else {
    need(p, 2, end, offset, 'topic length');
    topicLength = buf.readUInt16BE(p);
    p += 2;
  }
  need(p, topicLength, end, offset, 'topic');
  const topic = buf.toString('utf8', p, p + topicLength);
  p += topicLength;
  need(p, 2, end, offset, 'properties length');
  const propertiesLength = buf.readUInt16BE(p);
  p += 2;
  need(p, propertiesLength, end, offset, 'properties');
  const properties = propertiesLength > 0 ? decodeProperties(buf.toString('utf8', p, p + propertiesLength)) : {};
  const keys = properties[MessageProperty.KEYS];
  const offsetMsgId = storeHostInfo.hex + commitLogOffset.toString(16).toUpperCase().padStart(16, '0');
  return {
    message: {
      topic,
      queueId,
      queueOffset,
      commitLogOffset,
      storeSize,
      bodyCrc,
      flag,
      sysFlag,
      bornTimestamp,
      bornHost,
      storeTimestamp,
      storeHost: storeHostInfo.text,
      reconsumeTimes,
      preparedTransactionOffset,
      magicVersion,
      body,
      properties,
      tags: properties[MessageProperty.TAGS],
      keys: keys ? keys.split(' ').filter((k) => k !== '') : [],
      uniqKey: properties[MessageProperty.UNIQ_KEY],
      offsetMsgId,
    },
    next: end,
  };
}

/**
 * Decodes a pull-response body (messages back to back). When the pulled queue is an LMQ, the stored
 * queueId/queueOffset are the parent topic's; like the Java client, replace them with the LMQ's own
 * offset from INNER_MULTI_QUEUE_OFFSET.
 */
export function decodeMessages(body: Buffer | undefined, pulledTopic?: string): Message[] {
  const out: Message[] = [];
  if (!body) return out;
  let offset = 0;
  while (offset < body.length) {
    const { message, next } = decodeMessage(body, offset);
    offset = next;
    if (pulledTopic !== undefined && isLmq(pulledTopic)) applyLmqOffset(message, pulledTopic);
    out.push(message);
  }
  return out;
}

export function lmqOffsetsOf(properties: Record<string, string>): Map<string, number> {
  const result = new Map<string, number>();
  const names = properties[MessageProperty.INNER_MULTI_DISPATCH];
  const offsets = properties[MessageProperty.INNER_MULTI_QUEUE_OFFSET];
  if (!names || !offsets) return result;
  const nameList = names.split(LMQ_DISPATCH_SEPARATOR);
  const offsetList = offsets.split(LMQ_DISPATCH_SEPARATOR);
  nameList.forEach((name, i) => {
    const value = Number(offsetList[i]);
    if (offsetList[i] !== undefined && offsetList[i] !== '' && offsetList[i] !== 'null' && Number.isFinite(value)) result.set(name, value);
  });
  return result;
}

function applyLmqOffset(message: Message, lmq: string): void {
  const offset = lmqOffsetsOf(message.properties).get(lmq);
  if (offset !== undefined) {
    message.queueOffset = offset;
    message.queueId = LMQ_QUEUE_ID;
  }
}
