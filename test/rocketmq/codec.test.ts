// Unit tests of the frame codec, the stored-message decoder and the fastjson fix-up (no broker needed).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as zlib from 'node:zlib';
import { FrameDecoder, SerializeType, decodeFrame, encodeCommand, RemotingCommand } from '../../src/rocketmq/codec';
import { MessageDecodeError, RemotingProtocolError } from '../../src/rocketmq/errors';
import { NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR, decodeProperties, encodeProperties } from '../../src/rocketmq/message';
import {
  MESSAGE_MAGIC_CODE,
  MESSAGE_MAGIC_CODE_V2,
  MessageSysFlag,
  decodeMessages,
  lz4FrameDecompress,
} from '../../src/rocketmq/message-decoder';
import { fastjsonToJson, parseClusterInfo } from '../../src/rocketmq/route';

const sample: RemotingCommand = {
  code: 310,
  language: 7,
  version: 701,
  opaque: 42,
  flag: 0,
  remark: 'rémark',
  extFields: { a: 'group', b: 'topic', i: `k${NAME_VALUE_SEPARATOR}v${PROPERTY_SEPARATOR}`, unicode: '温度→€' },
  body: Buffer.from('payload'),
};

for (const [name, type] of [['ROCKETMQ', SerializeType.ROCKETMQ], ['JSON', SerializeType.JSON]] as const) {
  test(`${name} header: encode then decode gives the same command`, () => {
    const frame = Buffer.concat(encodeCommand(sample, type));
    assert.equal(frame.readInt32BE(0), frame.length - 4);
    assert.equal(frame.readUInt8(4), type);
    const decoded = decodeFrame(frame.subarray(4));
    assert.deepEqual({ ...decoded, body: decoded.body?.toString() }, { ...sample, body: 'payload' });
  });
}

test('frame decoder reassembles frames split at every byte and several frames per chunk', () => {
  const one = Buffer.concat(encodeCommand(sample));
  const two = Buffer.concat(encodeCommand({ ...sample, opaque: 43, body: undefined }));
  const all = Buffer.concat([one, two, one]);
  const decoder = new FrameDecoder();
  const out: RemotingCommand[] = [];
  for (let i = 0; i < all.length; i++) out.push(...decoder.push(all.subarray(i, i + 1)));
  assert.deepEqual(out.map((c) => c.opaque), [42, 43, 42]);
  assert.equal(out[1]?.body, undefined);
  const whole = new FrameDecoder().push(all);
  assert.equal(whole.length, 3);
});

test('frame decoder refuses oversize and malformed frames', () => {
  const big = Buffer.alloc(8);
  big.writeInt32BE(100 * 1024 * 1024, 0);
  assert.throws(() => new FrameDecoder(1024 * 1024).push(big), RemotingProtocolError);
  const tiny = Buffer.alloc(8);
  tiny.writeInt32BE(2, 0);
  assert.throws(() => new FrameDecoder().push(tiny), RemotingProtocolError);
  const badHeaderLen = Buffer.alloc(12);
  badHeaderLen.writeInt32BE(8, 0);
  badHeaderLen.writeInt32BE((1 << 24) | 9999, 4);
  assert.throws(() => new FrameDecoder().push(badHeaderLen), /header length/);
  const badType = Buffer.alloc(8);
  badType.writeInt32BE(4, 0);
  badType.writeInt32BE(7 << 24, 4);
  assert.throws(() => new FrameDecoder().push(badType), /serialize type/);
  const json = Buffer.from('{"code":');
  const badJson = Buffer.alloc(8);
  badJson.writeInt32BE(4 + json.length, 0);
  badJson.writeInt32BE(json.length, 4);
  assert.throws(() => new FrameDecoder().push(Buffer.concat([badJson, json])), /not valid JSON/);
});

test('properties: unicode and ordinary separators round-trip; RocketMQ separators are refused', () => {
  const props = { 'ключ': '值 with spaces, commas; = : | & % \n\t', emoji: '😀' };
  assert.deepEqual(decodeProperties(encodeProperties(props)), props);
  assert.throws(() => encodeProperties({ bad: `x${NAME_VALUE_SEPARATOR}y` }), /separator/);
  assert.throws(() => encodeProperties({ [`b${PROPERTY_SEPARATOR}`]: 'x' }), /separator/);
});

interface StoredSpec {
  magic: number;
  sysFlag: number;
  bornIp: number[];
  storeIp: number[];
  body: Buffer;
  topic: string;
  properties: string;
  queueOffset: number;
}

/** Builds a stored message exactly as CommitLog writes it (MessageExtEncoder). */
function storedMessage(spec: StoredSpec): Buffer {
  const topic = Buffer.from(spec.topic);
  const props = Buffer.from(spec.properties);
  const parts: Buffer[] = [];
  const int = (v: number): void => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    parts.push(b);
  };
  const long = (v: number): void => {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(BigInt(v));
    parts.push(b);
  };
  int(0); // total size, patched below
  int(spec.magic);
  int(12345); // body crc
  int(3); // queue id
  int(7); // flag
  long(spec.queueOffset);
  long(4096); // physical offset
  int(spec.sysFlag);
  long(1700000000000);
  parts.push(Buffer.from(spec.bornIp));
  int(5555);
  long(1700000000001);
  parts.push(Buffer.from(spec.storeIp));
  int(10911);
  int(0); // reconsume times
  long(0); // prepared transaction offset
  int(spec.body.length);
  parts.push(spec.body);
  if (spec.magic === MESSAGE_MAGIC_CODE) parts.push(Buffer.from([topic.length]));
  else {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(topic.length);
    parts.push(b);
  }
  parts.push(topic);
  const pl = Buffer.alloc(2);
  pl.writeUInt16BE(props.length);
  parts.push(pl, props);
  const all = Buffer.concat(parts);
  all.writeInt32BE(all.length, 0);
  return all;
}

const v4 = [127, 0, 0, 1];
const v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

test('decodes v1 and v2 magic, IPv4 and IPv6 hosts, properties, back to back', () => {
  const longTopic = 'T'.repeat(300);
  const buf = Buffer.concat([
    storedMessage({ magic: MESSAGE_MAGIC_CODE, sysFlag: 0, bornIp: v4, storeIp: v4, body: Buffer.from('one'), topic: 'short', properties: encodeProperties({ TAGS: 'x', k: 'ü' }), queueOffset: 9 }),
    storedMessage({
      magic: MESSAGE_MAGIC_CODE_V2,
      sysFlag: MessageSysFlag.BORNHOST_V6 | MessageSysFlag.STOREHOST_V6,
      bornIp: v6,
      storeIp: v6,
      body: Buffer.alloc(0),
      topic: longTopic,
      properties: '',
      queueOffset: 10,
    }),
  ]);
  const [a, b] = decodeMessages(buf);
  assert.ok(a && b);
  assert.equal(a.magicVersion, 1);
  assert.equal(a.topic, 'short');
  assert.equal(a.body.toString(), 'one');
  assert.equal(a.bornHost, '127.0.0.1:5555');
  assert.equal(a.tags, 'x');
  assert.equal(a.properties.k, 'ü');
  assert.equal(a.queueId, 3);
  assert.equal(a.flag, 7);
  assert.equal(b.magicVersion, 2);
  assert.equal(b.topic, longTopic);
  assert.equal(b.body.length, 0);
  assert.equal(b.bornHost, '[2001:db8:0:0:0:0:0:1]:5555');
  assert.equal(b.storeHost, '[2001:db8:0:0:0:0:0:1]:10911');
  assert.equal(b.queueOffset, 10);
});

test('decodes zlib-compressed and LZ4-frame-compressed bodies', () => {
  const plain = Buffer.from('compress me '.repeat(500));
  const zlibMsg = storedMessage({
    magic: MESSAGE_MAGIC_CODE,
    sysFlag: MessageSysFlag.COMPRESSED | MessageSysFlag.COMPRESSION_ZLIB,
    bornIp: v4,
    storeIp: v4,
    body: zlib.deflateSync(plain),
    topic: 't',
    properties: '',
    queueOffset: 0,
  });
  const [z] = decodeMessages(zlibMsg);
  assert.deepEqual(z?.body, plain);
  assert.equal((z?.sysFlag ?? 1) & MessageSysFlag.COMPRESSED, 0);

  // LZ4 frame, written by hand: one compressed block "abcabcabcabc..." + one uncompressed block.
  // Block: token 0x3F = 3 literals "abc", match length 15+extra; offset 3.
  const block = Buffer.from([0x3f, 0x61, 0x62, 0x63, 0x03, 0x00, 0x02]); // match len 15+2+4 = 21
  const header = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82]);
  const blockLen = Buffer.alloc(4);
  blockLen.writeUInt32LE(block.length);
  const rawLen = Buffer.alloc(4);
  rawLen.writeUInt32LE((0x80000000 | 2) >>> 0);
  const frame = Buffer.concat([header, blockLen, block, rawLen, Buffer.from('!!'), Buffer.alloc(4)]);
  const expected = Buffer.from('abc'.repeat(8) + '!!');
  assert.deepEqual(lz4FrameDecompress(frame), expected);
  const lz4Msg = storedMessage({
    magic: MESSAGE_MAGIC_CODE,
    sysFlag: MessageSysFlag.COMPRESSED | MessageSysFlag.COMPRESSION_LZ4,
    bornIp: v4,
    storeIp: v4,
    body: frame,
    topic: 't',
    properties: '',
    queueOffset: 0,
  });
  assert.deepEqual(decodeMessages(lz4Msg)[0]?.body, expected);
});

test('corrupt stored messages raise MessageDecodeError instead of crashing', () => {
  const good = storedMessage({ magic: MESSAGE_MAGIC_CODE, sysFlag: 0, bornIp: v4, storeIp: v4, body: Buffer.from('x'), topic: 't', properties: '', queueOffset: 0 });
  const badMagic = Buffer.from(good);
  badMagic.writeInt32BE(123, 4);
  assert.throws(() => decodeMessages(badMagic), MessageDecodeError);
  assert.throws(() => decodeMessages(good.subarray(0, good.length - 3)), MessageDecodeError);
  const badBodyLen = Buffer.from(good);
  badBodyLen.writeInt32BE(1_000_000, 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8);
  assert.throws(() => decodeMessages(badBodyLen), MessageDecodeError);
  const zlibGarbage = storedMessage({
    magic: MESSAGE_MAGIC_CODE,
    sysFlag: MessageSysFlag.COMPRESSED | MessageSysFlag.COMPRESSION_ZLIB,
    bornIp: v4,
    storeIp: v4,
    body: Buffer.from('not zlib'),
    topic: 't',
    properties: '',
    queueOffset: 0,
  });
  assert.throws(() => decodeMessages(zlibGarbage), MessageDecodeError);
});

test('fastjson integer map keys are quoted, strings untouched', () => {
  const text = '{"brokerAddrTable":{"b":{"brokerAddrs":{0:"127.0.0.1:1",1:"x{2:3}"},"brokerName":"b","cluster":"c"}},"clusterAddrTable":{"c":["b"]}}';
  const info = parseClusterInfo(Buffer.from(text));
  assert.equal(info.brokerAddrTable.get('b')?.brokerAddrs.get(0), '127.0.0.1:1');
  assert.equal(info.brokerAddrTable.get('b')?.brokerAddrs.get(1), 'x{2:3}');
  assert.equal(fastjsonToJson('{"a":[1,2],"b":{-1:"x"}}'), '{"a":[1,2],"b":{"-1":"x"}}');
});
