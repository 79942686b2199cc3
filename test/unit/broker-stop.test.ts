// Broker.stop() while a store commit is in flight: it waits for the commit, but only so long, so a
// store that stopped answering cannot hold the process; nothing uncommitted is acknowledged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Broker } from '../../src/broker/broker';
import { defaultBrokerOptions } from '../../src/broker/options';
import { MemoryStore } from '../../src/store/memory-store';
import { GatedStore } from '../guarantees/stores';
import { connected, enc, settle } from './harness';

test('broker: stop() with a commit the store never answers returns after its bound; no PUBACK for it', { timeout: 60_000 }, async () => {
  const store = new GatedStore(new MemoryStore());
  const broker = new Broker(store, defaultBrokerOptions);
  await broker.start();
  const { ch: pub, t: pubT } = await connected(broker, 4, { clientId: 'stop-pub' });
  store.hold();
  pub.receive(enc({ cmd: 'publish', topic: 's/x', payload: Buffer.from('p'), qos: 1, dup: false, retain: false, messageId: 5 }, 4));
  await settle();
  assert.equal(store.pending.length, 1, 'the commit is in flight');
  const outcome = await Promise.race([
    broker.stop().then(() => 'stopped'),
    new Promise((resolve) => setTimeout(() => resolve('still stopping after 30 s'), 30_000).unref()),
  ]);
  assert.equal(outcome, 'stopped');
  assert.deepEqual(pubT.cmds(4), ['connack'], 'nothing acknowledged that was not stored');
  store.fail(); // the store's late answer: a failure, still no PUBACK
  await settle();
  assert.deepEqual(pubT.cmds(4), ['connack']);
});

test('broker: stop() waits for a commit that does complete', async () => {
  const store = new GatedStore(new MemoryStore());
  const broker = new Broker(store, defaultBrokerOptions);
  await broker.start();
  const { ch: pub, t: pubT } = await connected(broker, 4, { clientId: 'stop-pub-2' });
  store.hold();
  pub.receive(enc({ cmd: 'publish', topic: 's/x', payload: Buffer.from('p'), qos: 1, dup: false, retain: false, messageId: 6 }, 4));
  await settle();
  let stopped = false;
  const stopping = broker.stop().then(() => (stopped = true));
  await settle();
  assert.equal(stopped, false, 'stop waits for the commit in flight');
  store.release();
  await stopping;
  assert.deepEqual(pubT.cmds(4), ['connack', 'puback'], 'the commit completed, and was acknowledged, before stop returned');
});
