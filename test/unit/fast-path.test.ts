import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqttPacket from 'mqtt-packet';
import { fastDecode, fastEncode } from '../../src/protocol/fast-path';
import { PacketDecoder } from '../../src/protocol/codec';
import type { Packet, ProtocolVersion } from '../../src/protocol/packets';

const versions: ProtocolVersion[] = [3, 4, 5];
const topics = ['a', 'a/b/c', 'ünïcødé/主题', 't'.repeat(300)];
const payloads = [0, 1, 100, 127, 200, 16_380, 16_400, 70_000].map((n) => Buffer.alloc(n, n % 251));

function publishes(): Packet[] {
  const out: Packet[] = [];
  let id = 1;
  for (const topic of topics)
    for (const payload of payloads)
      for (const qos of [0, 1, 2] as const)
        for (const [dup, retain] of [[false, false], [true, true], [false, true]] as const) {
          out.push({ cmd: 'publish', topic, payload, qos, dup, retain, messageId: qos > 0 ? id++ : undefined });
        }
  return out;
}

const acks: Packet[] = (['puback', 'pubrec', 'pubrel', 'pubcomp'] as const).flatMap((cmd) =>
  // reasonCode 0: mqtt-packet then writes MQTT 5 acks in their short form, as the fast path does.
  [1, 255, 256, 65535].map((messageId) => ({ cmd, messageId, reasonCode: 0 }) as Packet),
);

/** What mqtt-packet's parser makes of a frame. */
function parseWithMqttPacket(frame: Buffer, version: ProtocolVersion): Packet {
  const parser = mqttPacket.parser({ protocolVersion: version });
  let result: Packet | undefined;
  parser.on('packet', (p: Packet) => (result = p));
  parser.parse(frame);
  assert.ok(result, 'mqtt-packet parsed the frame');
  return result;
}

/** Drops the fields mqtt-packet fills with null/defaults on packets that do not carry them. */
function normalize(p: Packet): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) {
    if (v === null || v === undefined) continue;
    if (p.cmd !== 'publish' && (k === 'retain' || k === 'qos' || k === 'dup')) continue;
    out[k] = Buffer.isBuffer(v) ? v.toString('hex') : v;
  }
  return out;
}

test('fast encoder writes the same bytes as mqtt-packet for PUBLISH and acks, in every version', () => {
  let compared = 0;
  for (const version of versions) {
    for (const packet of [...publishes(), ...acks]) {
      const fast = fastEncode(packet, version);
      assert.ok(fast, `fast path covers ${packet.cmd}`);
      assert.deepEqual(fast, mqttPacket.generate(packet, { protocolVersion: version }), `${packet.cmd} v${version}`);
      compared++;
    }
  }
  assert.equal(compared, versions.length * (publishes().length + acks.length));
});

test('fast encoder declines what it does not cover: MQTT 5 properties and reason codes', () => {
  const withProps: Packet = { cmd: 'publish', topic: 'a', payload: Buffer.from('x'), qos: 0, dup: false, retain: false, properties: { contentType: 'text/plain' } };
  assert.equal(fastEncode(withProps, 5), null);
  assert.ok(fastEncode(withProps, 4), 'MQTT 3.1.1 has no properties: mqtt-packet ignores them too');
  assert.equal(fastEncode({ cmd: 'puback', messageId: 1, reasonCode: 0x80 }, 5), null);
  assert.equal(fastEncode({ cmd: 'suback', messageId: 1, granted: [0] }, 4), null);
});

test('fast decoder yields the same packets as mqtt-packet', () => {
  for (const version of versions) {
    for (const packet of [...publishes(), ...acks]) {
      const frame = mqttPacket.generate(packet, { protocolVersion: version });
      const headerLength = frame.length - remainingLength(frame).value;
      const fast = fastDecode(frame, headerLength, version);
      assert.ok(fast, `fast path decodes ${packet.cmd} v${version}`);
      assert.deepEqual(normalize(fast), normalize(parseWithMqttPacket(frame, version)), `${packet.cmd} v${version}`);
    }
  }
});

test('fast decoder leaves properties, bad flags and short frames to mqtt-packet', () => {
  const withProps = mqttPacket.generate(
    { cmd: 'publish', topic: 'a', payload: Buffer.from('x'), qos: 1, messageId: 3, dup: false, retain: false, properties: { contentType: 'x' } },
    { protocolVersion: 5 },
  );
  assert.equal(fastDecode(withProps, 2, 5), null);
  assert.equal(fastDecode(Buffer.from([0x36, 3, 0, 1, 0x61]), 2, 4), null, 'QoS 3');
  assert.equal(fastDecode(Buffer.from([0x62, 1, 0]), 2, 4), null, 'short PUBREL');
  assert.equal(fastDecode(Buffer.from([0x60, 2, 0, 1]), 2, 4), null, 'PUBREL without its 0x02 flags');
  assert.equal(fastDecode(Buffer.from([0x30, 3, 0, 5, 0x61]), 2, 4), null, 'topic longer than the frame');
});

test('the decoder gives the same packets whichever path, for a stream cut at every byte', () => {
  const stream = Buffer.concat([...publishes().slice(0, 40), ...acks].map((p) => mqttPacket.generate(p, { protocolVersion: 4 })));
  const expected = [...publishes().slice(0, 40), ...acks].map((p) => normalize(parseWithMqttPacket(mqttPacket.generate(p, { protocolVersion: 4 }), 4)));
  for (const cut of [1, 2, 3, 7, 64, 1000, stream.length]) {
    const decoder = new PacketDecoder(1 << 20);
    const got: Packet[] = [];
    for (let i = 0; i < stream.length; i += cut) got.push(...decoder.push(stream.subarray(i, i + cut)));
    assert.deepEqual(got.map(normalize), expected, `chunks of ${cut}`);
  }
});

function remainingLength(frame: Buffer): { value: number } {
  let value = 0;
  let multiplier = 1;
  for (let i = 1; i <= 4; i++) {
    value += (frame[i] & 0x7f) * multiplier;
    multiplier *= 128;
    if ((frame[i] & 0x80) === 0) return { value };
  }
  throw new Error('bad length');
}
