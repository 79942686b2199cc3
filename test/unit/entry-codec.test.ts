// The embedded store's binary queue-entry layout: every field survives a round trip, and damaged
// bytes are refused with a reason instead of read as a wrong entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EntryCodecError, EntryEncoder, type StoredQueueEntry, decodeEntry } from '../../src/store/entry-codec';

const full: StoredQueueEntry = {
  seq: 2 ** 40 + 3,
  packetId: 65535,
  qos: 2,
  subscriptionIds: [1, 268435455],
  retainAsPublished: true,
  state: 'pubrec',
  shareGroup: '$share/g/sensors/+',
  message: {
    topic: 'sensors/ünïcode/🌡',
    payload: Buffer.from([0, 1, 2, 255]),
    qos: 2,
    retain: true,
    expiresAt: 1_900_000_000_123,
    publisherId: 'device-42',
    createdAt: 1_800_000_000_456,
    movedFromMember: true,
    properties: {
      payloadFormatIndicator: true,
      contentType: 'application/json',
      responseTopic: 'replies/42',
      correlationData: Buffer.from('corr'),
      userProperties: { a: '1', b: ['x', 'y'] },
    },
  },
};

test('entry codec: every field round-trips', () => {
  const enc = new EntryEncoder();
  assert.deepEqual(decodeEntry(Buffer.from(enc.encode(full))), full);
  const minimal: StoredQueueEntry = {
    seq: 1,
    qos: 1,
    subscriptionIds: [],
    retainAsPublished: false,
    state: 'queued',
    message: { topic: 't', payload: Buffer.alloc(0), qos: 1, retain: false, publisherId: '', createdAt: 5 },
  };
  assert.deepEqual(decodeEntry(Buffer.from(enc.encode(minimal))), minimal);
  const byReference: StoredQueueEntry = { seq: 9, messageId: 77, qos: 0, subscriptionIds: [4], retainAsPublished: false, state: 'queued' };
  assert.deepEqual(decodeEntry(Buffer.from(enc.encode(byReference))), byReference);
});

test('entry codec: the encoder grows for a large payload and keeps working for small ones after it', () => {
  const enc = new EntryEncoder();
  const big = { ...full, message: { ...full.message!, payload: Buffer.alloc(300_000, 7) } };
  assert.equal(decodeEntry(Buffer.from(enc.encode(big))).message!.payload.length, 300_000);
  assert.deepEqual(decodeEntry(Buffer.from(enc.encode(full))), full);
});

test('entry codec: a truncated, extended or foreign entry is refused', () => {
  const bytes = Buffer.from(new EntryEncoder().encode(full));
  for (let cut = 0; cut < bytes.length; cut++) {
    assert.throws(() => decodeEntry(bytes.subarray(0, cut)), EntryCodecError, `cut at ${cut}`);
  }
  assert.throws(() => decodeEntry(Buffer.concat([bytes, Buffer.from([0])])), /past its end/);
  const foreign = Buffer.from(bytes);
  foreign[0] = 0x85; // a msgpack map
  assert.throws(() => decodeEntry(foreign), /layout version/);
});
