// The embedded store's queue layout: a message queued for one session is stored inline in its
// queue entry; one queued for several sessions is stored once, counted, and removed with its last
// reference. Checked on the LMDB files themselves, and across a reopen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open } from 'lmdb';
import { LmdbStore } from '../../src/store/lmdb-store';
import type { Message, QueueEntryRecord, StoreListener } from '../../src/store/types';
import { tempDir } from '../helpers';

const listener = {} as StoreListener; // the embedded store calls nothing on it

function message(topic: string, payload: string): Message {
  return { topic, payload: Buffer.from(payload), qos: 1, retain: false, publisherId: 'pub', createdAt: Date.now() };
}

function entry(seq: number, m: Message): QueueEntryRecord {
  return { seq, message: m, qos: 1, subscriptionIds: [], retainAsPublished: false, state: 'queued' };
}

function rows(dataDir: string, name: string): number {
  const root = open({ path: `${dataDir}/broker.lmdb`, maxDbs: 8, readOnly: true });
  try {
    return root.openDB({ name }).getKeysCount();
  } finally {
    void root.close();
  }
}

test('lmdb store: one recipient inline, several by reference; dequeues release shared messages with their last reference', async () => {
  const dataDir = tempDir();
  const record = (clientId: string) => ({ clientId, protocolVersion: 4 as const, expiryInterval: 3600, subscriptions: [] });
  let store = new LmdbStore({ dataDir, durability: 'strict', mapSize: 64 * 1024 * 1024 });
  await store.load(listener);
  const single = message('t/single', 'only for a');
  const shared = message('t/shared', 'for a and b');
  await store.commit([
    { op: 'putSession', record: record('a') },
    { op: 'putSession', record: record('b') },
    { op: 'enqueue', clientId: 'a', entry: entry(1, single) },
    { op: 'enqueue', clientId: 'a', entry: entry(2, shared) },
    { op: 'enqueue', clientId: 'b', entry: entry(1, shared) },
  ]);
  await store.close();
  assert.equal(rows(dataDir, 'messages'), 1, 'only the shared message has a row of its own');
  assert.equal(rows(dataDir, 'queue-entries'), 3);

  // Reopened: both kinds load with their message; the references are known again.
  store = new LmdbStore({ dataDir, durability: 'strict', mapSize: 64 * 1024 * 1024 });
  const loaded = await store.load(listener);
  const queues = new Map(loaded.sessions.map((s) => [s.record.clientId, s.queue.map((e) => e.message.payload.toString())]));
  assert.deepEqual(queues.get('a'), ['only for a', 'for a and b']);
  assert.deepEqual(queues.get('b'), ['for a and b']);
  await store.commit([{ op: 'dequeue', clientId: 'a', seq: 1 }, { op: 'dequeue', clientId: 'a', seq: 2 }]);
  await store.close();
  assert.equal(rows(dataDir, 'messages'), 1, 'b still references the shared message');
  assert.equal(rows(dataDir, 'queue-entries'), 1);

  store = new LmdbStore({ dataDir, durability: 'strict', mapSize: 64 * 1024 * 1024 });
  await store.load(listener);
  await store.commit([{ op: 'dequeue', clientId: 'b', seq: 1 }]);
  await store.close();
  assert.equal(rows(dataDir, 'messages'), 0, 'released with its last reference');
  assert.equal(rows(dataDir, 'refcounts'), 0);
  assert.equal(rows(dataDir, 'queue-entries'), 0);
});

test('lmdb store: a QoS 2 delivery past PUBREC loads in that state, and its dequeue removes the state row', async () => {
  const dataDir = tempDir();
  let store = new LmdbStore({ dataDir, durability: 'relaxed', mapSize: 64 * 1024 * 1024 });
  await store.load(listener);
  await store.commit([
    { op: 'putSession', record: { clientId: 'a', protocolVersion: 5, expiryInterval: 3600, subscriptions: [] } },
    { op: 'enqueue', clientId: 'a', entry: { ...entry(1, message('t/1', 'one')), qos: 2 } },
    { op: 'enqueue', clientId: 'a', entry: { ...entry(2, message('t/2', 'two')), qos: 2 } },
  ]);
  await store.commit([{ op: 'setDeliveryState', clientId: 'a', seq: 1, state: 'pubrec' }]);
  await store.close();
  assert.equal(rows(dataDir, 'delivery-states'), 1);

  store = new LmdbStore({ dataDir, durability: 'relaxed', mapSize: 64 * 1024 * 1024 });
  const loaded = await store.load(listener);
  assert.deepEqual(loaded.sessions[0]!.queue.map((e) => [e.seq, e.state]), [[1, 'pubrec'], [2, 'queued']]);
  await store.commit([{ op: 'dequeue', clientId: 'a', seq: 2 }, { op: 'dequeue', clientId: 'a', seq: 1 }]);
  await store.close();
  assert.equal(rows(dataDir, 'delivery-states'), 0, 'the state row went with its entry');
  assert.equal(rows(dataDir, 'queue-entries'), 0);
});

test('lmdb store: entries of a data directory written in the msgpack layout move to the binary one on open', async () => {
  const dataDir = tempDir();
  const legacy = open({ path: `${dataDir}/broker.lmdb`, maxDbs: 12 });
  const m = message('t/old', 'written by an older build');
  await legacy.openDB({ name: 'sessions' }).put('a', { clientId: 'a', protocolVersion: 4, expiryInterval: 3600, subscriptions: [] });
  await legacy.openDB({ name: 'queue' }).put(['a', 7], { ...entry(7, m), subscriptionIds: [3] });
  await legacy.close();

  const store = new LmdbStore({ dataDir, durability: 'relaxed', mapSize: 64 * 1024 * 1024 });
  const loaded = await store.load(listener);
  const queue = loaded.sessions[0]!.queue;
  assert.equal(queue.length, 1);
  assert.equal(queue[0]!.seq, 7);
  assert.deepEqual(queue[0]!.subscriptionIds, [3]);
  assert.equal(queue[0]!.message.payload.toString(), 'written by an older build');
  await store.close();
  assert.equal(rows(dataDir, 'queue'), 0, 'the old table is emptied');
  assert.equal(rows(dataDir, 'queue-entries'), 1);
});
