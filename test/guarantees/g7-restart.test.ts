// G7: retained messages and persistent sessions (subscriptions and queued messages) survive
// kill -9 of the broker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BrokerOnDisk } from './broker-process';
import { RawClient, payloads } from '../mqtt-helpers';

test('G7: retained messages, a retained delete, subscriptions and queued messages survive kill -9', async () => {
  const broker = new BrokerOnDisk();
  const clients: RawClient[] = [];
  try {
    let port = await broker.start();
    const { client: sub0 } = await RawClient.connect(port, 4, { clientId: 'g7-sub', clean: false });
    clients.push(sub0);
    assert.deepEqual((await sub0.subscribe('g7/q/#', 1)).granted, [1]);
    const { client: sub5 } = await RawClient.connect(port, 5, { clientId: 'g7-sub5', properties: { sessionExpiryInterval: 3600 } });
    clients.push(sub5);
    await sub5.subscribe('g7/q/#', 2);
    await sub0.disconnect();
    await sub5.disconnect();

    const { client: pub } = await RawClient.connect(port, 5, { clientId: 'g7-pub' });
    clients.push(pub);
    pub.publish('g7/r', 'kept', 1, 1, { retain: true });
    pub.publish('g7/del', 'to-delete', 1, 2, { retain: true });
    pub.publish('g7/del', '', 1, 3, { retain: true });
    for (let i = 1; i <= 3; i++) pub.publish('g7/q/x', `queued-${i}`, 1, 10 + i);
    for (const id of [1, 2, 3, 11, 12, 13]) await pub.take('puback', (p) => p.messageId === id);

    port = await broker.restart();

    const { client: pub2 } = await RawClient.connect(port, 5, { clientId: 'g7-pub' });
    clients.push(pub2);
    const { client: fresh } = await RawClient.connect(port, 5, { clientId: 'g7-fresh' });
    clients.push(fresh);
    await fresh.subscribe('g7/+', 1);
    const retained = await fresh.take('publish');
    assert.deepEqual([retained.topic, retained.payload.toString(), retained.retain], ['g7/r', 'kept', true]);
    await fresh.ping();
    assert.equal(fresh.all('publish').length, 1, 'the deleted retained message stays deleted');

    for (const [clientId, version] of [['g7-sub', 4], ['g7-sub5', 5]] as const) {
      const props = version === 5 ? { sessionExpiryInterval: 3600 } : undefined;
      const { client: sub, connack } = await RawClient.connect(port, version, { clientId, clean: false, properties: props });
      clients.push(sub);
      assert.equal(connack.sessionPresent, true, `${clientId}: session present after restart`);
      for (let i = 1; i <= 3; i++) {
        const p = await sub.take('publish', (m) => m.payload.toString() === `queued-${i}`);
        sub.send({ cmd: p.qos === 2 ? 'pubrec' : 'puback', messageId: p.messageId });
      }
      // The subscription itself survived: a new message is routed to it.
      pub2.publish('g7/q/x', `after-restart-${clientId}`, 0);
      await sub.take('publish', (m) => m.payload.toString() === `after-restart-${clientId}`);
      assert.deepEqual(payloads(sub.all('publish')), ['queued-1', 'queued-2', 'queued-3', `after-restart-${clientId}`]);
    }
  } finally {
    for (const c of clients) await c.destroy();
    await broker.stop();
  }
});

test('G7: after a graceful stop (SIGTERM, exit 0) retained messages and queued messages are there too', async () => {
  const broker = new BrokerOnDisk();
  const clients: RawClient[] = [];
  try {
    let port = await broker.start();
    const { client: sub0 } = await RawClient.connect(port, 5, { clientId: 'g7t-sub', properties: { sessionExpiryInterval: 3600 } });
    await sub0.subscribe('g7t/q', 1);
    await sub0.disconnect();
    const { client: pub } = await RawClient.connect(port, 4, { clientId: 'g7t-pub' });
    clients.push(pub);
    pub.publish('g7t/r', 'kept', 1, 1, { retain: true });
    pub.publish('g7t/q', 'queued', 1, 2);
    await pub.take('puback', (p) => p.messageId === 2);
    assert.equal(await broker.proc!.terminate(), 0);
    broker.proc = null;

    port = await broker.start();
    const { client: sub, connack } = await RawClient.connect(port, 5, { clientId: 'g7t-sub', clean: false, properties: { sessionExpiryInterval: 3600 } });
    clients.push(sub);
    assert.equal(connack.sessionPresent, true);
    await sub.take('publish', (p) => p.payload.toString() === 'queued');
    await sub.subscribe('g7t/r', 1);
    const r = await sub.take('publish', (p) => p.topic === 'g7t/r');
    assert.deepEqual([r.payload.toString(), r.retain], ['kept', true]);
  } finally {
    for (const c of clients) await c.destroy();
    await broker.stop();
  }
});
