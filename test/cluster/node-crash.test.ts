// A node killed with kill -9: its clients' wills are published by another node within the lease,
// and its clients find their sessions on the other nodes (G7, G8, G3/G4 across nodes).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient } from '../mqtt-helpers';
import { TestCluster, type ClusterNode } from './nodes';

const LEASE_MS = 2000;
const cluster = new TestCluster(['--node-lease-ms', String(LEASE_MS)]);
let b: ClusterNode;
let c: ClusterNode;

before(async () => {
  [, b, c] = await cluster.startAll('crash-a', 'crash-b', 'crash-c');
});

after(async () => {
  await cluster.stop();
});

test('cluster G8: the wills of the clients of a node killed with kill -9 are published once, by another node, within the lease', async () => {
  const a = cluster.nodes.get('crash-a')!;
  const { client: watcher } = await RawClient.connect(b.port, 5, { clientId: 'will-watcher' });
  const victims: RawClient[] = [];
  try {
    await watcher.subscribe('wills/#', 1);
    for (const [i, version] of ([5, 4, 5] as const).entries()) {
      const { client } = await RawClient.connect(a.port, version, {
        clientId: `victim-${i}`,
        clean: version === 4 ? i !== 1 : true,
        properties: version === 5 ? { sessionExpiryInterval: i === 2 ? 60 : 0 } : undefined,
        will: { topic: `wills/${i}`, payload: Buffer.from(`gone-${i}`), qos: 1, retain: false },
      });
      victims.push(client);
    }
    const killedAt = Date.now();
    await cluster.kill9('crash-a');
    for (let i = 0; i < 3; i++) {
      const will = await watcher.take('publish', (p) => p.topic === `wills/${i}`, LEASE_MS * 5 + 10_000);
      assert.equal(will.payload.toString(), `gone-${i}`);
      watcher.send({ cmd: 'puback', messageId: will.messageId });
    }
    const elapsed = Date.now() - killedAt;
    assert.ok(elapsed < LEASE_MS * 5, `wills took ${elapsed} ms with a ${LEASE_MS} ms lease`);
    // Once each: a marker published afterwards arrives after no second copy of any will.
    const { client: marker } = await RawClient.connect(c.port, 4, { clientId: 'will-marker' });
    marker.publish('wills/marker', 'marker', 1, 1);
    await watcher.take('publish', (p) => p.topic === 'wills/marker', 10_000);
    await marker.destroy();
    assert.deepEqual(
      watcher.all('publish').map((p) => p.topic).sort(),
      ['wills/0', 'wills/1', 'wills/2', 'wills/marker'],
    );
  } finally {
    for (const v of victims) await v.destroy();
    await watcher.destroy();
  }
});

test('cluster G3/G4: a persistent subscriber of a killed node reconnects to another: unacked QoS 1 re-sent with DUP and the same id, QoS 2 past PUBREC gets only PUBREL', async () => {
  const d = await cluster.start('crash-d');
  const { client: first } = await RawClient.connect(d.port, 5, { clientId: 'survivor', clean: false, properties: { sessionExpiryInterval: 300 } });
  const { client: pub } = await RawClient.connect(c.port, 5, { clientId: 'survivor-pub' });
  let second: RawClient | undefined;
  try {
    await first.subscribe('sv/#', 2);
    pub.publish('sv/q1', 'unacked-q1', 1, 1);
    pub.publish('sv/q2', 'pubrec-q2', 2, 2);
    await pub.take('puback');
    await pub.take('pubrec');
    const q1 = await first.take('publish', (p) => p.topic === 'sv/q1', 10_000);
    const q2 = await first.take('publish', (p) => p.topic === 'sv/q2', 10_000);
    first.send({ cmd: 'pubrec', messageId: q2.messageId }); // QoS 2 past PUBREC; QoS 1 never acknowledged
    await first.take('pubrel', (p) => p.messageId === q2.messageId, 10_000); // the pubrec state is stored
    await cluster.kill9('crash-d');

    const started = Date.now();
    let connack;
    for (;;) {
      assert.ok(Date.now() - started < LEASE_MS * 15, 'the session never became available');
      // Until the dead node's lease has expired the CONNECT is refused (0x88) or not answered in time: retry, as a client does.
      const attempt = await RawClient.connect(b.port, 5, { clientId: 'survivor', clean: false, properties: { sessionExpiryInterval: 300 } }).catch(() => undefined);
      if (!attempt) continue;
      if (attempt.connack.reasonCode === 0) {
        second = attempt.client;
        connack = attempt.connack;
        break;
      }
      await attempt.client.destroy(); // refused (0x88) until the dead node's lease has expired
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(connack.sessionPresent, true);
    const resent = await second.take('publish', (p) => p.topic === 'sv/q1', 10_000);
    assert.equal(resent.dup, true);
    assert.equal(resent.messageId, q1.messageId, 'the same packet id after the crash (derived from the inbox position)');
    const pubrel = await second.take('pubrel', (p) => p.messageId === q2.messageId, 10_000);
    assert.equal(pubrel.messageId, q2.messageId);
    second.send({ cmd: 'pubcomp', messageId: q2.messageId });
    second.send({ cmd: 'puback', messageId: resent.messageId });
    await second.ping();
    assert.deepEqual(second.all('publish').filter((p) => p.topic === 'sv/q2'), [], 'the QoS 2 message is not sent again');
  } finally {
    await first.destroy();
    await pub.destroy();
    await second?.destroy();
  }
});

test('cluster G2: a QoS 2 PUBLISH acknowledged with PUBREC on a node killed afterwards is not delivered twice when re-sent to another node', async () => {
  const e = await cluster.start('crash-e');
  const { client: sub } = await RawClient.connect(c.port, 5, { clientId: 'g2x-sub', clean: false, properties: { sessionExpiryInterval: 300 } });
  const { client: first } = await RawClient.connect(e.port, 4, { clientId: 'g2x-pub', clean: false });
  let second: RawClient | undefined;
  try {
    await sub.subscribe('g2x/#', 2);
    sub.onPacket((p) => {
      if (p.cmd === 'publish' && p.qos === 2) sub.send({ cmd: 'pubrec', messageId: p.messageId });
      if (p.cmd === 'publish' && p.qos === 1) sub.send({ cmd: 'puback', messageId: p.messageId });
      if (p.cmd === 'pubrel') sub.send({ cmd: 'pubcomp', messageId: p.messageId });
    });
    first.publish('g2x/t', 'exactly-once', 2, 9);
    await first.take('pubrec', (p) => p.messageId === 9, 10_000); // stored with its "received" record
    await cluster.kill9('crash-e'); // before PUBREL: the client must send the PUBLISH again

    const started = Date.now();
    for (;;) {
      assert.ok(Date.now() - started < LEASE_MS * 15, 'the session never became available');
      const attempt = await RawClient.connect(b.port, 4, { clientId: 'g2x-pub', clean: false }).catch(() => undefined);
      if (!attempt) continue;
      if (attempt.connack.returnCode === 0) {
        second = attempt.client;
        assert.equal(attempt.connack.sessionPresent, true);
        break;
      }
      await attempt.client.destroy();
      await new Promise((r) => setTimeout(r, 200));
    }
    second.publish('g2x/t', 'exactly-once', 2, 9, { dup: true });
    await second.take('pubrec', (p) => p.messageId === 9, 10_000);
    second.send({ cmd: 'pubrel', messageId: 9 });
    await second.take('pubcomp', (p) => p.messageId === 9, 10_000);
    second.publish('g2x/t', 'marker', 1, 10);
    await second.take('puback', (p) => p.messageId === 10, 10_000);
    await sub.take('publish', (p) => p.payload.toString() === 'marker', 10_000);
    assert.deepEqual(
      sub.all('publish').map((p) => p.payload.toString()),
      ['exactly-once', 'marker'],
      'the re-sent PUBLISH was answered from the stored record, not routed again',
    );
  } finally {
    await first.destroy();
    await second?.destroy();
    await sub.destroy();
  }
});

test('cluster G8: a will delay is honoured across the death of the node that held the session (not published when another node takes it over)', async () => {
  const f = await cluster.start('crash-f');
  const { client: watcher } = await RawClient.connect(b.port, 5, { clientId: 'delay-watcher' });
  try {
    await watcher.subscribe('delayed-wills/#', 1);
    const { client } = await RawClient.connect(f.port, 5, {
      clientId: 'delayed',
      clean: true,
      properties: { sessionExpiryInterval: 60 },
      will: { topic: 'delayed-wills/x', payload: Buffer.from('late'), qos: 1, retain: false, properties: { willDelayInterval: 6 } },
    });
    const cutAt = Date.now();
    await client.destroy(); // ungraceful: the will is due 6 s from now; the node is dead to the others after about 3 s
    await new Promise((r) => setTimeout(r, 500)); // the holder stores the disconnect time
    await cluster.kill9('crash-f'); // and dies before the delay is over
    const will = await watcher.take('publish', (p) => p.topic === 'delayed-wills/x', 30_000);
    const after = Date.now() - cutAt;
    assert.equal(will.payload.toString(), 'late');
    assert.ok(after >= 5500, `the will came ${after} ms after the disconnect, before its 6 s delay`);
    watcher.send({ cmd: 'puback', messageId: will.messageId });
    const { client: marker } = await RawClient.connect(c.port, 4, { clientId: 'delay-marker' });
    marker.publish('delayed-wills/marker', 'm', 1, 1);
    await watcher.take('publish', (p) => p.topic === 'delayed-wills/marker', 10_000);
    await marker.destroy();
    assert.equal(watcher.all('publish').filter((p) => p.topic === 'delayed-wills/x').length, 1, 'once');
  } finally {
    await watcher.destroy();
  }
});
