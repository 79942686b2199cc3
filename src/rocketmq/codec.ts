// RocketMQ remoting frame codec (RemotingCommand / RocketMQSerializable in apache/rocketmq).
//
// Frame:  int32 totalLength (bytes after this field)
//         int32 (serializeType << 24) | headerLength
//         header (JSON or ROCKETMQ binary)
//         body (totalLength - 4 - headerLength bytes)
//
// ROCKETMQ binary header: int16 code, int8 language, int16 version, int32 opaque, int32 flag,
//   int32 remarkLen + utf8 remark, int32 extLen + { int16 keyLen, key, int32 valLen, val }*
import { RemotingProtocolError } from './errors';

export const SerializeType = { JSON: 0, ROCKETMQ: 1 } as const;
export type SerializeType = (typeof SerializeType)[keyof typeof SerializeType];

/** flag bit 0: response; bit 1: one-way request. */
export const FLAG_RESPONSE = 1;
export const FLAG_ONEWAY = 2;

/** LanguageCode.OTHER: the broker does not branch on the language; OTHER is known to every broker version. */
export const LANGUAGE_OTHER = 7;
const LANGUAGE_NAMES = ['JAVA', 'CPP', 'DOTNET', 'PYTHON', 'DELPHI', 'ERLANG', 'RUBY', 'OTHER', 'HTTP', 'GO', 'PHP', 'OMS', 'RUST', 'NODE_JS'];

/** MQVersion.Version.V5_3_3.ordinal(); any value >= 401 enables the v2 send header. */
export const CLIENT_VERSION = 701;

export type ExtFields = Record<string, string>;

export interface RemotingCommand {
  code: number;
  language: number;
  version: number;
  opaque: number;
  flag: number;
  remark?: string;
  extFields: ExtFields;
  body?: Buffer;
}

export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;
const MAX_HEADER_BYTES = 0xffffff;

export function isResponse(cmd: RemotingCommand): boolean {
  return (cmd.flag & FLAG_RESPONSE) !== 0;
}

/** Returns [8 reserved prefix bytes + header]; the caller fills in the prefix. */
function encodeRocketMQHeader(cmd: RemotingCommand): Buffer {
  // Two passes (measure, then write in place) avoid a Buffer per key and value on the hot path.
  const remarkLength = cmd.remark ? Buffer.byteLength(cmd.remark, 'utf8') : 0;
  let extLength = 0;
  const keys = Object.keys(cmd.extFields);
  for (const key of keys) {
    const value = cmd.extFields[key];
    if (value === undefined) continue;
    extLength += 2 + Buffer.byteLength(key, 'utf8') + 4 + Buffer.byteLength(value, 'utf8');
  }
  const header = Buffer.allocUnsafe(8 + 2 + 1 + 2 + 4 + 4 + 4 + remarkLength + 4 + extLength);
  let o = 8;
  o = header.writeInt16BE(cmd.code, o);
  o = header.writeInt8(cmd.language, o);
  o = header.writeInt16BE(cmd.version, o);
  o = header.writeInt32BE(cmd.opaque, o);
  o = header.writeInt32BE(cmd.flag, o);
  o = header.writeInt32BE(remarkLength, o);
  if (cmd.remark) o += header.write(cmd.remark, o, 'utf8');
  o = header.writeInt32BE(extLength, o);
  for (const key of keys) {
    const value = cmd.extFields[key];
    if (value === undefined) continue;
    const keyLength = header.write(key, o + 2, 'utf8');
    header.writeInt16BE(keyLength, o);
    o += 2 + keyLength;
    const valueLength = header.write(value, o + 4, 'utf8');
    header.writeInt32BE(valueLength, o);
    o += 4 + valueLength;
  }
  return header;
}

/** Returns [8 reserved prefix bytes + header]; the caller fills in the prefix. */
function encodeJsonHeader(cmd: RemotingCommand): Buffer {
  const json = JSON.stringify({
    code: cmd.code,
    language: LANGUAGE_NAMES[cmd.language] ?? 'OTHER',
    version: cmd.version,
    opaque: cmd.opaque,
    flag: cmd.flag,
    remark: cmd.remark,
    extFields: cmd.extFields,
    serializeTypeCurrentRPC: 'JSON',
  });
  const header = Buffer.allocUnsafe(8 + Buffer.byteLength(json, 'utf8'));
  header.write(json, 8, 'utf8');
  return header;
}

/** Encodes a command into one or two buffers ([length, header length, header], body) for a vectored write. */
export function encodeCommand(cmd: RemotingCommand, serializeType: SerializeType = SerializeType.ROCKETMQ): Buffer[] {
  const head = serializeType === SerializeType.ROCKETMQ ? encodeRocketMQHeader(cmd) : encodeJsonHeader(cmd);
  const headerLength = head.length - 8;
  if (headerLength > MAX_HEADER_BYTES) throw new RemotingProtocolError(`header too large: ${headerLength} bytes`);
  const bodyLength = cmd.body?.length ?? 0;
  head.writeInt32BE(4 + headerLength + bodyLength, 0);
  head.writeInt32BE((serializeType << 24) | headerLength, 4);
  return bodyLength > 0 && cmd.body ? [head, cmd.body] : [head];
}

function decodeRocketMQHeader(buf: Buffer): Omit<RemotingCommand, 'body'> {
  let o = 0;
  const need = (n: number, what: string): void => {
    if (o + n > buf.length) throw new RemotingProtocolError(`ROCKETMQ header truncated reading ${what} at ${o} of ${buf.length}`);
  };
  need(17, 'fixed fields');
  const code = buf.readInt16BE(0);
  const language = buf.readInt8(2);
  const version = buf.readInt16BE(3);
  const opaque = buf.readInt32BE(5);
  const flag = buf.readInt32BE(9);
  const remarkLen = buf.readInt32BE(13);
  o = 17;
  if (remarkLen < 0) throw new RemotingProtocolError(`negative remark length ${remarkLen}`);
  need(remarkLen, 'remark');
  const remark = remarkLen > 0 ? buf.toString('utf8', o, o + remarkLen) : undefined;
  o += remarkLen;
  need(4, 'extFields length');
  const extLen = buf.readInt32BE(o);
  o += 4;
  if (extLen < 0) throw new RemotingProtocolError(`negative extFields length ${extLen}`);
  need(extLen, 'extFields');
  const end = o + extLen;
  const extFields: ExtFields = {};
  while (o < end) {
    need(2, 'ext key length');
    const kLen = buf.readUInt16BE(o);
    o += 2;
    need(kLen, 'ext key');
    const key = buf.toString('utf8', o, o + kLen);
    o += kLen;
    need(4, 'ext value length');
    const vLen = buf.readInt32BE(o);
    o += 4;
    if (vLen < 0) throw new RemotingProtocolError(`negative ext value length ${vLen}`);
    need(vLen, 'ext value');
    extFields[key] = buf.toString('utf8', o, o + vLen);
    o += vLen;
  }
  if (o !== end) throw new RemotingProtocolError('extFields overrun their declared length');
  return { code, language, version, opaque, flag, remark, extFields };
}

function asInt(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new RemotingProtocolError(`JSON header field ${field} is not an integer`);
  return value;
}

function decodeJsonHeader(buf: Buffer): Omit<RemotingCommand, 'body'> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new RemotingProtocolError(`JSON header is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new RemotingProtocolError('JSON header is not an object');
  }
  const h = parsed as Record<string, unknown>;
  let extFields: ExtFields = {};
  if (h.extFields !== undefined && h.extFields !== null) {
    if (typeof h.extFields !== 'object' || Array.isArray(h.extFields)) throw new RemotingProtocolError('JSON header extFields is not an object');
    // Brokers send string values; normalise anything else in place rather than copying the map.
    const raw = h.extFields as Record<string, unknown>;
    for (const k in raw) {
      const v = raw[k];
      if (typeof v === 'string') continue;
      if (v === null || v === undefined) delete raw[k];
      else raw[k] = String(v);
    }
    extFields = raw as ExtFields;
  }
  const languageIndex = typeof h.language === 'string' ? LANGUAGE_NAMES.indexOf(h.language) : -1;
  return {
    code: asInt(h.code, 'code'),
    language: languageIndex >= 0 ? languageIndex : LANGUAGE_OTHER,
    version: h.version === undefined ? 0 : asInt(h.version, 'version'),
    opaque: asInt(h.opaque, 'opaque'),
    flag: h.flag === undefined ? 0 : asInt(h.flag, 'flag'),
    remark: typeof h.remark === 'string' ? h.remark : undefined,
    extFields,
  };
}

/** Decodes one frame without its 4-byte length prefix. */
export function decodeFrame(frame: Buffer): RemotingCommand {
  if (frame.length < 4) throw new RemotingProtocolError(`frame of ${frame.length} bytes is shorter than its header-length field`);
  const marked = frame.readUInt32BE(0);
  const serializeType = marked >>> 24;
  const headerLength = marked & 0xffffff;
  if (headerLength > frame.length - 4) {
    throw new RemotingProtocolError(`header length ${headerLength} exceeds frame length ${frame.length - 4}`);
  }
  const headerBuf = frame.subarray(4, 4 + headerLength);
  let header: Omit<RemotingCommand, 'body'>;
  if (serializeType === SerializeType.JSON) header = decodeJsonHeader(headerBuf);
  else if (serializeType === SerializeType.ROCKETMQ) header = decodeRocketMQHeader(headerBuf);
  else throw new RemotingProtocolError(`unknown serialize type ${serializeType}`);
  const body = frame.length > 4 + headerLength ? frame.subarray(4 + headerLength) : undefined;
  return { ...header, body };
}

/**
 * Incremental frame splitter. Holds at most one incomplete frame (bounded by maxFrameBytes);
 * a frame that announces a larger size is refused before its bytes are buffered.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private expected = -1;

  constructor(private readonly maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {}

  /** Feeds bytes; returns the complete commands. Throws RemotingProtocolError on malformed input. */
  push(data: Buffer): RemotingCommand[] {
    this.chunks.push(data);
    this.buffered += data.length;
    const out: RemotingCommand[] = [];
    for (;;) {
      if (this.expected < 0) {
        if (this.buffered < 4) break;
        const lengthBytes = this.take(4);
        const total = lengthBytes.readInt32BE(0);
        if (total < 4) throw new RemotingProtocolError(`frame length ${total} is smaller than the minimum of 4`);
        if (total > this.maxFrameBytes) {
          throw new RemotingProtocolError(`frame length ${total} exceeds the limit of ${this.maxFrameBytes} bytes`);
        }
        this.expected = total;
      }
      if (this.buffered < this.expected) break;
      const frame = this.take(this.expected);
      this.expected = -1;
      out.push(decodeFrame(frame));
    }
    return out;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) {
      const result = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return result;
    }
    const result = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0];
      if (chunk === undefined) throw new RemotingProtocolError('internal: frame decoder underflow');
      const use = Math.min(chunk.length, n - filled);
      chunk.copy(result, filled, 0, use);
      filled += use;
      if (use === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(use);
    }
    this.buffered -= n;
    return result;
  }
}
