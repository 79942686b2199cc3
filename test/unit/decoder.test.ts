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
