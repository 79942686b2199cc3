// One conformance suite for every Store the embedded broker can run on (memory and LMDB): what a
// commit promises, checked through the port itself (commit, then load after a reopen), and for
// LMDB a real crash (kill -9 of a child process committing batches) between batches. The
// cluster's store delivers through RocketMQ (`publish` ops, not queue ops): the same contract for
// it, without the queue ops, is test/cluster/store-conformance.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { LmdbStore } from '../../src/store/lmdb-store';
import { MemoryStore } from '../../src/store/memory-store';
import type { LoadedState, Message, QueueEntryRecord, SessionRecord, Store, StoreListener } from '../../src/store/types';
import { tempDir } from '../helpers';

const listener = {} as StoreListener; // neither store calls back into it

interface Kind {
  name: string;
  open(): Promise<Store>;
  /** The same durable state in a new instance (memory: the same instance; LMDB: closed and reopened). */
  reopen(store: Store): Promise<Store>;
}

const kinds: Kind[] = [
  {
    name: 'memory',
    open: async () => {
      const s = new MemoryStore();
      await s.load(listener);
      return s;
    },
    reopen: async (s) => s,
  },
  (() => {
    const dirs = new WeakMap<Store, string>();
    const openAt = async (dataDir: string): Promise<Store> => {
      const s = new LmdbStore({ dataDir, durability: 'relaxed', mapSize: 64 * 1024 * 1024 });
      dirs.set(s, dataDir);
      return s;
    };
    return {
      name: 'lmdb',
      open: async () => {
        const s = await openAt(tempDir());
        await s.load(listener);
        return s;
      },
      reopen: async (s: Store) => {
        await s.close();
        return openAt(dirs.get(s)!);
      },
    };
  })(),
];

const record = (clientId: string): SessionRecord => ({ clientId, protocolVersion: 5, expiryInterval: 3600, subscriptions: [{ filter: 'a/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
const message = (topic: string, payload: string): Message => ({ topic, payload: Buffer.from(payload), qos: 1, retain: false, publisherId: 'p', createdAt: 1 });
const entry = (seq: number, m: Message): QueueEntryRecord => ({ seq, message: m, qos: 1, subscriptionIds: [], retainAsPublished: false, state: 'queued' });

function queueOf(state: LoadedState, clientId: string): string[] {
  return state.sessions.find((s) => s.record.clientId === clientId)?.queue.map((e) => `${e.seq}:${e.message.payload.toString()}:${e.state}`) ?? [];
}

for (const kind of kinds) {
  test(`store conformance (${kind.name}): commits of one turn apply in call order`, async () => {
    let store = await kind.open();
    // All in one event-loop turn, as the broker issues them: LMDB writes them in one transaction.
    const commits = [
      store.commit([{ op: 'putSession', record: record('a') }, { op: 'enqueue', clientId: 'a', entry: entry(1, message('a/1', 'one')) }]),
      store.commit([{ op: 'dequeue', clientId: 'a', seq: 1 }]),
      store.commit([{ op: 'enqueue', clientId: 'a', entry: entry(2, message('a/2', 'two')) }]),
      store.commit([{ op: 'deleteSession', clientId: 'a' }]),
      store.commit([{ op: 'putSession', record: record('a') }, { op: 'enqueue', clientId: 'a', entry: entry(1, message('a/1', 'again')) }]),
      store.commit([{ op: 'putRetained', message: message('r/1', 'first') }, { op: 'deleteRetained', topic: 'r/1' }, { op: 'putRetained', message: message('r/1', 'last') }]),
    ];
    await Promise.all(commits);
    store = await kind.reopen(store);
    const state = await store.load(listener);
    assert.deepEqual(queueOf(state, 'a'), ['1:again:queued'], 'the dequeue and the delete came before the later enqueue');
    assert.deepEqual(state.retained.map((m) => m.payload.toString()), ['last']);
    await store.close();
  });

  test(`store conformance (${kind.name}): delivery states, QoS 2 records and subscriptions survive a reopen; deletes remove them`, async () => {
    let store = await kind.open();
    await store.commit([
      { op: 'putSession', record: record('b') },
      { op: 'enqueue', clientId: 'b', entry: { ...entry(1, message('a/1', 'x')), qos: 2 } },
      { op: 'enqueue', clientId: 'b', entry: { ...entry(2, message('a/2', 'y')), qos: 2 } },
      { op: 'putInboundQos2', clientId: 'b', packetId: 7 },
      { op: 'putInboundQos2', clientId: 'b', packetId: 9 },
    ]);
    await store.commit([{ op: 'setDeliveryState', clientId: 'b', seq: 2, state: 'pubrec' }, { op: 'deleteInboundQos2', clientId: 'b', packetId: 7 }]);
    store = await kind.reopen(store);
    let state = await store.load(listener);
    const b = state.sessions.find((s) => s.record.clientId === 'b')!;
    assert.deepEqual(queueOf(state, 'b'), ['1:x:queued', '2:y:pubrec']);
    assert.deepEqual(b.inboundQos2, [9]);
    assert.deepEqual(b.record.subscriptions.map((s) => s.filter), ['a/#']);
    await store.commit([{ op: 'deleteSession', clientId: 'b' }]);
    store = await kind.reopen(store);
    state = await store.load(listener);
    assert.equal(state.sessions.length, 0);
    await store.close();
  });

  test(`store conformance (${kind.name}): one message queued for several sessions stays until its last dequeue`, async () => {
    let store = await kind.open();
    const shared = message('a/s', 'shared');
    await store.commit([
      ...['c1', 'c2', 'c3'].map((c) => ({ op: 'putSession' as const, record: record(c) })),
      ...['c1', 'c2', 'c3'].map((c) => ({ op: 'enqueue' as const, clientId: c, entry: entry(5, shared) })),
    ]);
    await store.commit([{ op: 'dequeue', clientId: 'c1', seq: 5 }]);
    store = await kind.reopen(store);
    let state = await store.load(listener);
    assert.deepEqual([queueOf(state, 'c1'), queueOf(state, 'c2'), queueOf(state, 'c3')], [[], ['5:shared:queued'], ['5:shared:queued']]);
    await store.commit([{ op: 'dequeue', clientId: 'c2', seq: 5 }]);
    store = await kind.reopen(store);
    state = await store.load(listener);
    assert.deepEqual(queueOf(state, 'c3'), ['5:shared:queued'], 'still there for its last session');
    await store.commit([{ op: 'dequeue', clientId: 'c3', seq: 5 }]);
    store = await kind.reopen(store);
    state = await store.load(listener);
    assert.deepEqual(state.sessions.map((s) => s.queue.length), [0, 0, 0]);
    await store.close();
  });

  test(`store conformance (${kind.name}): a closed store refuses commits with StoreError 'closed'`, async () => {
    const store = await kind.open();
    await store.close();
    await assert.rejects(store.commit([{ op: 'putSession', record: record('z') }]), { name: 'StoreError', reason: 'closed' });
  });
}

test('store conformance (lmdb): kill -9 between batches keeps every acknowledged batch, and each batch whole or not at all', async () => {
  const dataDir = tempDir();
  const child = spawn(process.execPath, [path.join(__dirname, 'store-crash-child.js'), dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  let acknowledged = 0;
  let buffered = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child acknowledged only ${acknowledged} batches in 20 s`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const l of lines) if (l.startsWith('committed ')) acknowledged = Number(l.slice(10));
      if (acknowledged >= 300) {
        clearTimeout(timer);
        child.kill('SIGKILL'); // while it keeps committing
        resolve();
      }
    });
  });
  await new Promise((r) => child.once('exit', r));
  const store = new LmdbStore({ dataDir, durability: 'relaxed', mapSize: 64 * 1024 * 1024 });
  const state = await store.load(listener);
  const a = new Set(state.sessions.find((s) => s.record.clientId === 'a')!.queue.map((e) => e.seq));
  const b = new Set(state.sessions.find((s) => s.record.clientId === 'b')!.queue.map((e) => e.seq));
  for (let n = 1; n <= acknowledged; n++) assert.ok(a.has(n) && b.has(n), `batch ${n} was acknowledged but is missing`);
  for (const n of a) assert.ok(b.has(n), `batch ${n} is half there: in a, not in b`);
  for (const n of b) assert.ok(a.has(n), `batch ${n} is half there: in b, not in a`);
  await store.close();
});
