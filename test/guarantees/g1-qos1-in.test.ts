// G1: QoS 1 in. PUBACK only after the store commit; store failures are retried
// publishMaxRetries times, then MQTT 5 gets PUBACK 0x80 and MQTT 3.1.1 a close (no PUBACK).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory-store';
import type { StoreOp } from '../../src/store/types';
import { startTestBroker } from '../helpers';
import { RawClient, payloads } from '../mqtt-helpers';
import { FaultyStore, GatedStore } from './stores';

const hasEnqueue = (ops: StoreOp[]) => ops.some((op) => op.op === 'enqueue');
const retryOptions = { publishMaxRetries: 3, publishRetryBaseMs: 1, publishRetryMaxMs: 4 };

/** A persistent subscriber (so a QoS 1 publish has something to store), on `g1/#`. */
async function persistentSubscriber(port: number): Promise<RawClient> {
  const { client } = await RawClient.connect(port, 5, { clientId: 'g1-sub', clean: true, properties: { sessionExpiryInterval: 300 } });
  const suback = await client.subscribe('g1/#', 1);
  assert.deepEqual(suback.granted, [1]);
  return client;
}

test('G1 MQTT 5: store failing beyond the retries gives PUBACK 0x80, nothing is delivered', async () => {
  const store = new FaultyStore(new MemoryStore());
  store.failWhen = hasEnqueue;
  const b = await startTestBroker(retryOptions, { store });
  const clients: RawClient[] = [];
  try {
    const sub = await persistentSubscriber(b.port);
    clients.push(sub);
    const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'g1-pub5' });
    clients.push(pub);

    store.failNext = 1 + retryOptions.publishMaxRetries; // the first try and every retry fail
    pub.publish('g1/a', 'refused', 1, 11);
    const refused = await pub.take('puback', (p) => p.messageId === 11);
    assert.equal(refused.reasonCode, 0x80);
    assert.equal(b.broker.stats.storeRetries, retryOptions.publishMaxRetries);
    assert.equal(b.broker.stats.publishStoreFailures, 1);
    assert.equal(store.injected, 4);
    assert.equal(pub.closed, false, 'MQTT 5 keeps the connection');

    // The next publish on the same topic works; ordering makes it a barrier for the refused one.
    pub.publish('g1/a', 'stored', 1, 12);
    const ok = await pub.take('puback', (p) => p.messageId === 12);
    assert.equal(ok.reasonCode ?? 0, 0);
    const got = await sub.take('publish');
    assert.equal(got.payload.toString(), 'stored');
    await sub.ping();
    assert.deepEqual(payloads(sub.all('publish')), ['stored'], 'the refused message was never delivered');
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});

test('G1 MQTT 5: a store failure within the retries is retried, then PUBACK success', async () => {
  const store = new FaultyStore(new MemoryStore());
  store.failWhen = hasEnqueue;
  const b = await startTestBroker(retryOptions, { store });
  const clients: RawClient[] = [];
  try {
    const sub = await persistentSubscriber(b.port);
    clients.push(sub);
    const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'g1-pub5b' });
    clients.push(pub);
    store.failNext = 2;
    pub.publish('g1/b', 'after-2-failures', 1, 5);
    const ack = await pub.take('puback', (p) => p.messageId === 5);
    assert.equal(ack.reasonCode ?? 0, 0);
    assert.equal(b.broker.stats.storeRetries, 2);
    assert.equal(b.broker.stats.publishStoreFailures, 0);
    const got = await sub.take('publish');
    assert.equal(got.payload.toString(), 'after-2-failures');
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});

test('G1 MQTT 3.1.1: store failing beyond the retries closes the connection without PUBACK; the re-send is delivered once', async () => {
  const store = new FaultyStore(new MemoryStore());
  store.failWhen = hasEnqueue;
  const b = await startTestBroker(retryOptions, { store });
  const clients: RawClient[] = [];
  try {
    const sub = await persistentSubscriber(b.port);
    clients.push(sub);
    const { client: pub } = await RawClient.connect(b.port, 4, { clientId: 'g1-pub4', clean: false });
    clients.push(pub);
    store.failNext = 1 + retryOptions.publishMaxRetries;
    pub.publish('g1/c', 'v311', 1, 21);
    await pub.waitClosed();
    assert.deepEqual(pub.all('puback'), [], 'no PUBACK for a message that was not stored');
    assert.equal(b.broker.stats.storeRetries, retryOptions.publishMaxRetries);
    await sub.ping();
    assert.deepEqual(sub.all('publish'), []);

    // The client re-sends on its next connection (as MQTT 3.1.1 requires), this time it is stored.
    const { client: again, connack } = await RawClient.connect(b.port, 4, { clientId: 'g1-pub4', clean: false });
    clients.push(again);
    assert.equal(connack.sessionPresent, true);
    again.publish('g1/c', 'v311', 1, 21, { dup: true });
    const ack = await again.take('puback', (p) => p.messageId === 21);
    assert.equal(ack.messageId, 21);
    const got = await sub.take('publish');
    assert.equal(got.payload.toString(), 'v311');
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});

test('G1: PUBACK waits for the store commit to resolve (MQTT 5 and 3.1.1)', async () => {
  const store = new GatedStore(new MemoryStore());
  const b = await startTestBroker({}, { store });
  const clients: RawClient[] = [];
  try {
    const sub = await persistentSubscriber(b.port);
    clients.push(sub);
    for (const version of [5, 4] as const) {
      const { client: pub } = await RawClient.connect(b.port, version, { clientId: `g1-gated-${version}` });
      clients.push(pub);
      store.hold();
      pub.publish('g1/gated', `held-${version}`, 1, 31);
      await pub.ping(); // PINGRESP is not ordered behind the PUBACK: the broker has read the PUBLISH
      assert.ok(store.pending.some(hasEnqueue), 'the publish commit was issued');
      assert.deepEqual(pub.all('puback'), [], 'no PUBACK before the commit resolved');
      store.release();
      const ack = await pub.take('puback', (p) => p.messageId === 31);
      assert.equal(ack.messageId, 31);
      const got = await sub.take('publish', (p) => p.payload.toString() === `held-${version}`);
      assert.equal(got.qos, 1);
    }
  } finally {
    store.release();
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});

test('G1: a retained QoS 1 message whose store commit failed is not kept as the retained message', async () => {
  const store = new FaultyStore(new MemoryStore());
  store.failWhen = (ops) => ops.some((op) => op.op === 'putRetained');
  const b = await startTestBroker(retryOptions, { store });
  const clients: RawClient[] = [];
  try {
    const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'g1-retain-pub' });
    clients.push(pub);
    pub.publish('g1/retained', 'kept', 1, 1, { retain: true });
    assert.equal((await pub.take('puback', (p) => p.messageId === 1)).reasonCode ?? 0, 0);

    store.failNext = 1 + retryOptions.publishMaxRetries;
    pub.publish('g1/retained', 'refused', 1, 2, { retain: true });
    assert.equal((await pub.take('puback', (p) => p.messageId === 2)).reasonCode, 0x80);

    const { client: sub } = await RawClient.connect(b.port, 5, { clientId: 'g1-retain-sub' });
    clients.push(sub);
    await sub.subscribe('g1/retained', 1);
    const retained = await sub.take('publish');
    assert.equal(retained.payload.toString(), 'kept', 'the refused message did not replace the stored retained one');
    assert.equal(b.broker.retained.get('g1/retained')?.payload.toString(), 'kept');
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});
