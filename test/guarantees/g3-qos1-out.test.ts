// G3: QoS 1 out, at least once, to online and offline persistent sessions. Unacked deliveries are
// re-sent on reconnect with DUP=1 and their original packet id; acked ones are not re-sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConnectPacket, ProtocolVersion } from '../../src/protocol/packets';
import { startTestBroker } from '../helpers';
import { BrokerOnDisk } from './broker-process';
import { RawClient, payloads } from '../mqtt-helpers';

function persistent(version: ProtocolVersion, clientId: string): Partial<ConnectPacket> & { clientId: string } {
  return version === 5 ? { clientId, clean: false, properties: { sessionExpiryInterval: 300 } } : { clientId, clean: false };
}

async function publishAcked(pub: RawClient, topic: string, payload: string, id: number): Promise<void> {
  pub.publish(topic, payload, 1, id);
  const ack = await pub.take('puback', (p) => p.messageId === id);
  assert.equal(ack.reasonCode ?? 0, 0);
}

for (const version of [5, 4] as ProtocolVersion[]) {
  test(`G3 MQTT ${version === 5 ? '5' : '3.1.1'}: unacked QoS 1 deliveries are re-sent on reconnect with DUP=1 and the same id; offline messages follow`, async () => {
    const b = await startTestBroker();
    const clients: RawClient[] = [];
    try {
      const { client: sub0 } = await RawClient.connect(b.port, version, persistent(version, 'g3-sub'));
      clients.push(sub0);
      await sub0.subscribe('g3/#', 1);
      const { client: pub } = await RawClient.connect(b.port, 4, { clientId: 'g3-pub' });
      clients.push(pub);
      for (let i = 1; i <= 3; i++) await publishAcked(pub, 'g3/t', `m${i}`, i);
      const first = [];
      for (let i = 1; i <= 3; i++) first.push(await sub0.take('publish', (p) => p.payload.toString() === `m${i}`));
      assert.deepEqual(first.map((p) => p.dup), [false, false, false]);
      assert.deepEqual(first.map((p) => p.qos), [1, 1, 1]);
      const ids = first.map((p) => p.messageId);
      assert.equal(new Set(ids).size, 3, 'distinct packet ids in flight');
      sub0.send({ cmd: 'puback', messageId: ids[0] }); // m1 acknowledged, m2 and m3 not
      await sub0.ping();
      await sub0.destroy();

      await publishAcked(pub, 'g3/t', 'offline-4', 4); // queued for the offline session

      const { client: sub, connack } = await RawClient.connect(b.port, version, persistent(version, 'g3-sub'));
      clients.push(sub);
      assert.equal(connack.sessionPresent, true);
      const resent2 = await sub.take('publish', (p) => p.payload.toString() === 'm2');
      const resent3 = await sub.take('publish', (p) => p.payload.toString() === 'm3');
      const offline = await sub.take('publish', (p) => p.payload.toString() === 'offline-4');
      assert.deepEqual([resent2.dup, resent2.messageId], [true, ids[1]]);
      assert.deepEqual([resent3.dup, resent3.messageId], [true, ids[2]]);
      assert.equal(offline.dup, false);
      assert.equal(offline.qos, 1);
      await sub.ping();
      assert.deepEqual(payloads(sub.all('publish')), ['m2', 'm3', 'offline-4'], 'm1 was acked and is not re-sent');

      // Everything acked: a further reconnect re-sends nothing.
      for (const p of sub.all('publish')) sub.send({ cmd: 'puback', messageId: p.messageId });
      await sub.ping();
      await sub.destroy();
      const { client: sub2 } = await RawClient.connect(b.port, version, persistent(version, 'g3-sub'));
      clients.push(sub2);
      await sub2.ping();
      assert.deepEqual(sub2.all('publish'), []);
    } finally {
      for (const c of clients) await c.destroy();
      await b.stop();
    }
  });
}

test('G3 after kill -9: unacked and queued QoS 1 deliveries are re-sent with their original packet ids', async () => {
  const broker = new BrokerOnDisk();
  const clients: RawClient[] = [];
  try {
    let port = await broker.start();
    const { client: sub0 } = await RawClient.connect(port, 5, persistent(5, 'g3c-sub'));
    clients.push(sub0);
    await sub0.subscribe('g3c/#', 1);
    const { client: pub } = await RawClient.connect(port, 5, { clientId: 'g3c-pub' });
    clients.push(pub);
    await publishAcked(pub, 'g3c/t', 'inflight', 1);
    const inflight = await sub0.take('publish');
    await sub0.destroy();
    await publishAcked(pub, 'g3c/t', 'queued', 2);

    port = await broker.restart();
    const { client: sub, connack } = await RawClient.connect(port, 5, persistent(5, 'g3c-sub'));
    clients.push(sub);
    assert.equal(connack.sessionPresent, true);
    const again = await sub.take('publish', (p) => p.payload.toString() === 'inflight');
    assert.equal(again.dup, true);
    assert.equal(again.messageId, inflight.messageId);
    await sub.take('publish', (p) => p.payload.toString() === 'queued');
    await sub.ping();
    assert.deepEqual(payloads(sub.all('publish')), ['inflight', 'queued']);
  } finally {
    for (const c of clients) await c.destroy();
    await broker.stop();
  }
});

/** Receives `total` QoS 1 PUBLISHes; acks only what has arrived, and reports the most ever unacknowledged. */
async function receiveWithinWindow(sub: RawClient, total: number): Promise<{ payloads: string[]; maxUnacked: number }> {
  const got: string[] = [];
  let maxUnacked = 0;
  while (got.length < total) {
    await sub.take('publish', undefined, 5000);
    await sub.ping(); // everything the broker sent so far has arrived
    const unacked = sub.all('publish').slice(got.length);
    maxUnacked = Math.max(maxUnacked, unacked.length);
    for (const p of unacked) {
      got.push(p.payload.toString());
      sub.send({ cmd: 'puback', messageId: p.messageId });
    }
  }
  return { payloads: got, maxUnacked };
}

test('G3 MQTT 5: re-sends on reconnect respect the Receive Maximum of the new connection (§4.9)', async () => {
  const b = await startTestBroker();
  const clients: RawClient[] = [];
  try {
    const { client: sub0 } = await RawClient.connect(b.port, 5, { clientId: 'g3w-sub', properties: { sessionExpiryInterval: 300, receiveMaximum: 10 } });
    clients.push(sub0);
    await sub0.subscribe('g3w/#', 1);
    const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'g3w-pub' });
    clients.push(pub);
    for (let i = 1; i <= 12; i++) await publishAcked(pub, 'g3w/t', `w${i}`, i);
    await sub0.take('publish', (p) => p.payload.toString() === 'w10');
    await sub0.ping();
    assert.equal(sub0.all('publish').length, 10, 'the first connection gets its Receive Maximum of 10');
    await sub0.destroy();

    const { client: sub } = await RawClient.connect(b.port, 5, { clientId: 'g3w-sub', clean: false, properties: { sessionExpiryInterval: 300, receiveMaximum: 3 } });
    clients.push(sub);
    const { payloads: got, maxUnacked } = await receiveWithinWindow(sub, 12);
    assert.deepEqual(got, Array.from({ length: 12 }, (_, i) => `w${i + 1}`));
    assert.ok(maxUnacked <= 3, `at most 3 unacknowledged PUBLISHes, saw ${maxUnacked}`);
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});

test('G3 after kill -9: queued messages restored from the store are sent within the client\'s Receive Maximum', async () => {
  const broker = new BrokerOnDisk();
  const clients: RawClient[] = [];
  try {
    let port = await broker.start();
    const { client: sub0 } = await RawClient.connect(port, 5, persistent(5, 'g3wc-sub'));
    await sub0.subscribe('g3wc/#', 1);
    await sub0.disconnect();
    const { client: pub } = await RawClient.connect(port, 5, { clientId: 'g3wc-pub' });
    clients.push(pub);
    for (let i = 1; i <= 30; i++) pub.publish('g3wc/t', `q${i}`, 1, i);
    for (let i = 1; i <= 30; i++) await pub.take('puback', (p) => p.messageId === i);

    port = await broker.restart();
    const { client: sub } = await RawClient.connect(port, 5, { clientId: 'g3wc-sub', clean: false, properties: { sessionExpiryInterval: 300, receiveMaximum: 5 } });
    clients.push(sub);
    const { payloads: got, maxUnacked } = await receiveWithinWindow(sub, 30);
    assert.deepEqual(got, Array.from({ length: 30 }, (_, i) => `q${i + 1}`));
    assert.ok(maxUnacked <= 5, `at most 5 unacknowledged PUBLISHes, saw ${maxUnacked}`);
  } finally {
    for (const c of clients) await c.destroy();
    await broker.stop();
  }
});
