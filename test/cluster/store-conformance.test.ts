// The store conformance suite of test/unit/store-conformance.test.ts, for the cluster's store:
// what a commit promises through the port, on the test RocketMQ, with a second node (a second
// ClusterStore) as the reader. Queue ops are not the cluster's (it stores `publish` ops, whose
// deliveries the cluster tests check with real node processes); the rest of the contract is.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ClusterStore } from '../../src/cluster/cluster-store';
import type { Message, SessionRecord, Store, StoreListener, StoreOp } from '../../src/store/types';
import { namesrvAddr, uniqueName } from '../rocketmq/helpers';

const clusterName = uniqueName('conf').replace(/_/g, '').slice(0, 24);
const open: ClusterStore[] = [];

/** A test node: its store, and the retained set as the store reports it (at load, then by retainedChanged). */
interface TestNode {
  store: ClusterStore;
  retained: Map<string, Message>;
}

async function node(nodeId: string): Promise<TestNode> {
  const retained = new Map<string, Message>();
  // No connections on these nodes: only what the store reports of retained messages matters here.
  const listener: StoreListener = {
    adopt: () => undefined,
    release: () => undefined,
    deliver: () => undefined,
    routeChanged: () => undefined,
    retainedChanged: (topic, message) => (message ? retained.set(topic, message) : retained.delete(topic)),
    unreadable: () => undefined,
    bridged: async () => undefined,
  };
  const store = new ClusterStore({
    namesrv: namesrvAddr(),
    nodeId,
    clusterName,
    nodeLeaseMs: 3000,
    messageQueues: 2,
    claimTimeoutMs: 8000,
    snapshotEvery: 256,
    snapshotRenewMs: 60_000,
    openReadLimit: 1000,
    uplink: [],
    downlinkTopic: undefined,
    maxPayload: 1024 * 1024,
    log: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
  });
  open.push(store);
  const state = await store.load(listener);
  for (const m of state.retained) retained.set(m.topic, m);
  return { store, retained };
}

after(async () => {
  await Promise.all(open.map((s) => s.close().catch(() => undefined)));
});

const record = (clientId: string): SessionRecord => ({ clientId, protocolVersion: 5, expiryInterval: 3600, subscriptions: [{ filter: 'a/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
const message = (topic: string, payload: string): Message => ({ topic, payload: Buffer.from(payload), qos: 1, retain: true, publisherId: 'p', createdAt: 1 });

test('store conformance (cluster): commits of one turn apply in call order, seen by another node', async () => {
  const { store: first } = await node('conf-1');
  const store: Store = first;
  await Promise.all([
    store.commit([{ op: 'putRetained', message: message('r/1', 'first') }]),
    store.commit([{ op: 'deleteRetained', topic: 'r/1' }]),
    store.commit([{ op: 'putRetained', message: message('r/1', 'last') }, { op: 'putRetained', message: message('r/2', 'gone') }]),
    store.commit([{ op: 'deleteRetained', topic: 'r/2' }]),
  ]);
  const second = await node('conf-2');
  await second.store.sync(); // the read barrier: everything stored before it is visible
  assert.deepEqual([...second.retained.values()].map((m) => `${m.topic}=${m.payload.toString()}`), ['r/1=last']);
});

test('store conformance (cluster): a session, its subscriptions and QoS 2 records are what another node opens; the old holder\'s writes no longer count; a delete removes them', async () => {
  const [{ store: a }, { store: b }, { store: c }, { store: d }] = [await node('conf-3'), await node('conf-4'), await node('conf-5'), await node('conf-6')];
  assert.equal(await a.openSession('s1'), undefined, 'nothing stored under that id yet');
  await a.commit([{ op: 'putSession', record: record('s1') }]);
  // The cluster stores an inbound QoS 2 record with its message (the broker always commits both together).
  const publish = (id: number): StoreOp[] => [{ op: 'publish', message: message(`q/${id}`, 'x'), clientIds: [] }, { op: 'putInboundQos2', clientId: 's1', packetId: id }];
  await Promise.all([a.commit(publish(7)), a.commit(publish(9))]);
  await a.commit([{ op: 'deleteInboundQos2', clientId: 's1', packetId: 7 }]);
  const moved = await b.openSession('s1');
  assert.ok(moved, 'node B opens the session node A stored');
  assert.deepEqual(moved.record.subscriptions.map((s) => s.filter), ['a/#']);
  assert.deepEqual(moved.inboundQos2, [9]);
  await a.commit([{ op: 'putSession', record: { ...record('s1'), subscriptions: [] } }]).catch(() => undefined);
  const again = await c.openSession('s1');
  assert.deepEqual(again?.record.subscriptions.map((s) => s.filter), ['a/#'], 'A wrote after B took the session: it does not count');
  await c.commit([{ op: 'deleteSession', clientId: 's1' }]);
  assert.equal(await d.openSession('s1'), undefined, 'deleted for every node');
});

test('store conformance (cluster): an empty commit resolves after the earlier ones; a closed store refuses commits with StoreError closed', async () => {
  const { store } = await node('conf-7');
  const order: string[] = [];
  const writes = [1, 2, 3].map((i) => store.commit([{ op: 'putRetained', message: message(`e/${i}`, 'x') }]).then(() => order.push(`write ${i}`)));
  await store.commit([]).then(() => order.push('empty'));
  await Promise.all(writes);
  // Writes of different topics may finish in any order; the empty commit after all of them.
  assert.deepEqual([order.length, order.at(-1)], [4, 'empty'], order.join(', '));
  await store.close();
  await assert.rejects(store.commit([{ op: 'putSession', record: record('z') }]), { name: 'StoreError', reason: 'closed' });
});
