import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqttPacket from 'mqtt-packet';
import { PacketDecoder } from '../../src/protocol/codec';
import { MqttError } from '../../src/protocol/errors';

const connect5 = mqttPacket.generate({ cmd: 'connect', clientId: 'c', protocolVersion: 5, clean: true, keepalive: 0 }, { protocolVersion: 5 });

function decoderAfterConnect(): PacketDecoder {
  const decoder = new PacketDecoder(1 << 20);
  assert.equal(decoder.push(connect5)[0].cmd, 'connect');
  return decoder;
}

function refuses(decoder: PacketDecoder, bytes: number[], reason: RegExp): void {
  assert.throws(
    () => decoder.push(Buffer.from(bytes)),
    (e: unknown) => e instanceof MqttError && e.reasonCode === 0x81 && reason.test(e.message),
  );
}

test('a user property whose value runs past the packet is malformed (mqtt-packet would keep it as null)', () => {
  // PUBLISH QoS 0, topic "t", properties: user property name "a", value claiming 5 bytes with 1 left.
  refuses(decoderAfterConnect(), [0x30, 0x0b, 0x00, 0x01, 0x74, 0x07, 0x26, 0x00, 0x01, 0x61, 0x00, 0x05, 0x62], /property/);
});

test('a topic name that is not UTF-8, or holds U+0000, is malformed whichever decoder path reads it', () => {
  // MQTT 5 without properties (fast path) and with a content type property (mqtt-packet path).
  refuses(decoderAfterConnect(), [0x30, 0x06, 0x00, 0x02, 0x61, 0xff, 0x00, 0x78], /UTF-8/);
  refuses(decoderAfterConnect(), [0x30, 0x09, 0x00, 0x02, 0x61, 0xff, 0x03, 0x03, 0x00, 0x00, 0x78], /UTF-8/);
  refuses(decoderAfterConnect(), [0x30, 0x06, 0x00, 0x02, 0x61, 0x00, 0x00, 0x78], /U\+0000/);
  const ok = decoderAfterConnect().push(Buffer.from([0x30, 0x07, 0x00, 0x03, 0xc3, 0xa9, 0x61, 0x00, 0x78]));
  assert.equal(ok[0].cmd === 'publish' && ok[0].topic, 'éa');
});

test('a stream split at any points decodes to the same packets as in one piece (pending frames finished without copying the rest)', () => {
  const packets = [
    mqttPacket.generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.alloc(1000, 1), qos: 1, messageId: 1, dup: false, retain: false }, { protocolVersion: 5 }),
    mqttPacket.generate({ cmd: 'puback', messageId: 7 }, { protocolVersion: 5 }),
    mqttPacket.generate({ cmd: 'publish', topic: 'x', payload: Buffer.alloc(20_000, 2), qos: 0, dup: false, retain: false }, { protocolVersion: 5 }), // 3-byte length
    mqttPacket.generate({ cmd: 'pingreq' }, { protocolVersion: 5 }),
    mqttPacket.generate({ cmd: 'publish', topic: 'p', payload: Buffer.from('props'), qos: 0, dup: false, retain: false, properties: { contentType: 'text/plain', userProperties: { k: 'v' } } }, { protocolVersion: 5 }),
    mqttPacket.generate({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 's/#', qos: 1 }] }, { protocolVersion: 5 }),
  ];
  const stream = Buffer.concat([...packets, ...packets]);
  const expected = decoderAfterConnect().push(stream).map((p) => JSON.stringify(p));
  assert.equal(expected.length, 12);
  let seed = 42;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let round = 0; round < 60; round++) {
    const decoder = decoderAfterConnect();
    const got: string[] = [];
    // Chunk sizes from 1 byte (headers split byte by byte) to 70 KB.
    const maxChunk = [1, 3, 7, 64, 1500, 70_000][round % 6]!;
    for (let pos = 0; pos < stream.length; ) {
      const size = 1 + random(maxChunk);
      for (const p of decoder.push(Buffer.from(stream.subarray(pos, pos + size)))) got.push(JSON.stringify(p));
      pos += size;
    }
    assert.deepEqual(got, expected, `round ${round}, chunks up to ${maxChunk} bytes`);
  }
});
