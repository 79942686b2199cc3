import { isUtf8 } from 'node:buffer';
import mqttPacket from 'mqtt-packet';
import type { Packet, ProtocolVersion } from './packets';
import { MqttError } from './errors';
import { ReasonCode } from './reason-codes';
import { fastDecode, fastEncode } from './fast-path';

// mqtt-packet's generator fills a cache of 65 536 two-byte buffers (about 4 MB) on its first
// packet, for packet ids and lengths. It only writes the packets the fast path leaves to it
// (CONNACK, SUBACK, DISCONNECT, ...): allocating their few numbers costs less than the cache.
mqttPacket.writeToStream.cacheNumbers = false;

/**
 * One mqtt-packet parser serves every connection: each connection cuts its byte stream into
 * whole frames itself and hands the parser exactly one frame at a time, so the parser never
 * holds state between calls. A parser per connection would cost kilobytes per idle client.
 */
let sharedParser = newParser();
let parsed: Packet | null = null;
let parseError: Error | null = null;

/** mqtt-packet keeps the settings (protocol version) as a public field it reassigns on CONNECT. */
type FrameParser = mqttPacket.Parser & { settings: ParserSettings };

function newParser(): FrameParser {
  const parser = mqttPacket.parser({}) as FrameParser;
  parser.on('packet', (p: Packet) => (parsed = p));
  parser.on('error', (e: Error) => (parseError ??= e));
  return parser;
}

interface ParserSettings {
  protocolVersion?: ProtocolVersion;
}

/**
 * Decodes a byte stream into MQTT packets.
 *
 * mqtt-packet's parser buffers a whole packet before it looks at its size, so a peer could
 * make us buffer up to 256 MiB. The decoder reads each fixed header first and refuses an
 * oversize packet before any of its body is kept.
 */
export class PacketDecoder {
  /** Bytes of an incomplete frame, and how many the frame needs in all (0: header incomplete). */
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private needed = 0;
  private settings: ParserSettings = {};
  /** Fixed-header size of the frame last measured by frameSizeAt. */
  private headerLength = 0;

  constructor(public maxPacketSize: number) {}

  /** Feeds bytes; returns the complete packets they finish. Throws MqttError on bad input. */
  push(chunk: Buffer): Packet[] {
    let data = chunk;
    if (this.chunks.length > 0) {
      this.chunks.push(chunk);
      this.bufferedBytes += chunk.length;
      if (this.needed > this.bufferedBytes) return EMPTY;
      data = Buffer.concat(this.chunks, this.bufferedBytes);
      this.chunks = [];
      this.bufferedBytes = 0;
    }
    let packets = EMPTY;
    let pos = 0;
    while (pos < data.length) {
      const frameSize = this.frameSizeAt(data, pos);
      if (frameSize < 0 || data.length - pos < frameSize) {
        // Keep the rest; copy it so a small remainder does not pin a large socket chunk.
        const rest = Buffer.from(data.subarray(pos));
        this.chunks = [rest];
        this.bufferedBytes = rest.length;
        this.needed = Math.max(frameSize, 0);
        break;
      }
      const frame = data.subarray(pos, pos + frameSize);
      if (frame[0] >> 4 === 3) checkPublishTopic(frame, this.headerLength);
      const packet = fastDecode(frame, this.headerLength, this.settings.protocolVersion) ?? this.parseFrame(frame);
      if (packets === EMPTY) packets = [];
      packets.push(packet);
      pos += frameSize;
    }
    return packets;
  }

  /** The size of the frame starting at `pos`, -1 if its fixed header is not complete yet. */
  private frameSizeAt(data: Buffer, pos: number): number {
    let remaining = 0;
    let multiplier = 1;
    for (let i = 1; i <= 4; i++) {
      if (pos + i >= data.length) return -1;
      const byte = data[pos + i];
      remaining += (byte & 0x7f) * multiplier;
      multiplier *= 128;
      if ((byte & 0x80) === 0) {
        const total = 1 + i + remaining;
        this.headerLength = 1 + i;
        if (total > this.maxPacketSize) {
          throw new MqttError(
            ReasonCode.PacketTooLarge,
            `packet of ${total} bytes exceeds the maximum packet size ${this.maxPacketSize}`,
          );
        }
        return total;
      }
    }
    throw new MqttError(ReasonCode.MalformedPacket, 'malformed remaining length');
  }

  private parseFrame(frame: Buffer): Packet {
    parsed = null;
    parseError = null;
    sharedParser.settings = this.settings;
    let leftover = 0;
    try {
      leftover = sharedParser.parse(frame);
    } catch (e) {
      parseError ??= e as Error;
    }
    const packet = parsed as Packet | null;
    const error = parseError as Error | null;
    if (error || !packet || leftover > 0) {
      sharedParser = newParser(); // never let one connection's bad frame leave state for the next
      const message = error?.message ?? 'packet shorter or longer than its remaining length';
      // A CONNECT with a protocol level we do not speak is answered with CONNACK 0x01 (MQTT-3.1.2-2).
      if (message === 'Invalid protocol version') {
        throw new MqttError(ReasonCode.UnsupportedProtocolVersion, `unsupported protocol version: ${message}`);
      }
      throw new MqttError(ReasonCode.MalformedPacket, `malformed packet: ${message}`);
    }
    if (hasNullProperty(packet)) {
      throw new MqttError(ReasonCode.MalformedPacket, 'malformed packet: a property value is cut short');
    }
    if (packet.cmd === 'connect') this.settings = { protocolVersion: packet.protocolVersion };
    return packet;
  }
}

const EMPTY: Packet[] = [];

/**
 * mqtt-packet stores a property whose string or binary value runs past the packet as null
 * instead of failing; such a packet is malformed, and passing it on would make encoding fail later.
 */
function hasNullProperty(packet: Packet): boolean {
  const props = [(packet as { properties?: object }).properties];
  if (packet.cmd === 'connect') props.push(packet.will?.properties);
  for (const p of props) {
    if (!p) continue;
    for (const [name, value] of Object.entries(p)) {
      if (value === null) return true;
      if (name === 'userProperties') {
        for (const v of Object.values(value as Record<string, unknown>)) {
          if (v === null || (Array.isArray(v) && v.includes(null))) return true;
        }
      }
    }
  }
  return false;
}

/**
 * A topic name must be well-formed UTF-8 without U+0000, else the packet is malformed
 * (MQTT 5 §1.5.4, MQTT-1.5.3-1/-2). mqtt-packet decodes strings leniently (bad bytes become
 * U+FFFD), so the bytes are checked here, before decoding.
 */
function checkPublishTopic(frame: Buffer, headerLength: number): void {
  if (frame.length < headerLength + 2) return; // too short: the parser reports it
  const start = headerLength + 2;
  const end = Math.min(start + frame.readUInt16BE(headerLength), frame.length);
  const topic = frame.subarray(start, end);
  if (!isUtf8(topic)) throw new MqttError(ReasonCode.MalformedPacket, 'topic name is not valid UTF-8');
  if (topic.includes(0)) throw new MqttError(ReasonCode.MalformedPacket, 'topic name contains U+0000');
}

/** Encodes a packet for the given protocol version. */
export function encodePacket(packet: Packet, protocolVersion: ProtocolVersion): Buffer {
  return fastEncode(packet, protocolVersion) ?? mqttPacket.generate(packet, { protocolVersion });
}
