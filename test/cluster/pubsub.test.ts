// Cluster mode against a real RocketMQ and real node processes: publish and subscribe across
// nodes, sessions that move between nodes, takeover, retained messages, /readyz.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { collect, connect, endClient } from '../helpers';
import { RawClient, payloads } from '../mqtt-helpers';
import { TestCluster, type ClusterNode } from './nodes';

const cluster = new TestCluster();
let a: ClusterNode;
let b: ClusterNode;
let c: ClusterNode;

before(async () => {
  [a, b, c] = await cluster.startAll('node-a', 'node-b', 'node-c');
});

after(async () => {
  await cluster.stop();
});

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

test('cluster: /healthz and /readyz answer 200 on a node with RocketMQ reachable', async () => {
  assert.equal((await get(a.adminPort, '/healthz')).status, 200);
  const ready = await get(a.adminPort, '/readyz');
  assert.equal(ready.status, 200, ready.body);
  assert.deepEqual(JSON.parse(ready.body), { ready: true, store: 'rocketmq' });
});

for (const qos of [0, 1, 2] as const) {
  test(`cluster: QoS ${qos} published on one node reaches exact and wildcard subscribers on the others, both ways`, async () => {
    const subB = await connect(b.port, { clientId: `x-sub-b-${qos}` });
    const subC = await connect(c.port, { clientId: `x-sub-c-${qos}`, protocolVersion: 5 });
    const pubA = await connect(a.port, { clientId: `x-pub-a-${qos}` });
    try {
      const atB = collect(subB);
      const atC = collect(subC);
      await subB.subscribeAsync(`x${qos}/exact/topic`, { qos });
      await subC.subscribeAsync(`x${qos}/+/topic`, { qos }); // nobody registered this filter before
      await subC.subscribeAsync(`x${qos}/#`, { qos });
      await pubA.publishAsync(`x${qos}/exact/topic`, 'a-to-bc', { qos });
      const [fromA] = await atB.waitFor(1, 10_000);
      assert.equal(fromA.payload.toString(), 'a-to-bc');
      assert.equal(fromA.packet.qos, qos);
      await atC.waitFor(1, 10_000);
      assert.equal(atC.messages[0].payload.toString(), 'a-to-bc');
      // And back: a subscriber on A receives what B publishes.
      const atA = collect(pubA);
      await pubA.subscribeAsync(`y${qos}/#`, { qos });
      await subB.publishAsync(`y${qos}/back`, 'b-to-a', { qos });
      const [back] = await atA.waitFor(1, 10_000);
      assert.equal(back.payload.toString(), 'b-to-a');
      // Overlapping subscriptions on C: one delivery (MQTT-3.3.5-1), not one per filter.
      await pubA.publishAsync(`x${qos}/marker/topic`, 'marker', { qos });
      await atC.waitFor(2, 10_000);
      assert.deepEqual(atC.messages.map((m) => m.payload.toString()), ['a-to-bc', 'marker']);
    } finally {
      await Promise.all([endClient(subB), endClient(subC), endClient(pubA)]);
    }
  });
}

test('cluster: mosquitto_pub on one node, mosquitto_sub on another', async () => {
  const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.port), '-t', 'mosq/#', '-q', '2', '-v', '-i', 'mosq-sub', '-W', '30']);
  let out = '';
  sub.stdout.on('data', (d: Buffer) => (out += d.toString()));
  // The subscriber is known to the cluster once a marker published on another node reaches it.
  const watch = await RawClient.connect(c.port, 4, { clientId: 'mosq-watch' }).then((r) => r.client);
  try {
    for (let i = 0; i < 50 && !out.includes('mosq/ready'); i++) {
      watch.publish('mosq/ready', 'r', 0);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(out.includes('mosq/ready'), `mosquitto_sub never subscribed: ${out}`);
    const sent = await new Promise<number | null>((resolve) => {
      const pub = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(a.port), '-t', 'mosq/hello', '-m', 'from-mosquitto', '-q', '1']);
      pub.once('exit', resolve);
    });
    assert.equal(sent, 0);
    for (let i = 0; i < 100 && !out.includes('mosq/hello'); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(out, /mosq\/hello from-mosquitto/);
  } finally {
    sub.kill('SIGKILL');
    await watch.destroy();
  }
});

test('cluster: a persistent session moves from node A to node B with every queued message, in order per publisher (G3, G5)', async () => {
  const first = await connect(a.port, { clientId: 'mover', clean: false });
  await first.subscribeAsync('mv/#', { qos: 1 });
  await endClient(first);
  const pubA = await connect(a.port, { clientId: 'mv-pub-a' });
  const pubC = await connect(c.port, { clientId: 'mv-pub-c' });
  try {
    for (let i = 0; i < 20; i++) {
      await pubA.publishAsync('mv/a', `a${i}`, { qos: 1 });
      await pubC.publishAsync('mv/c', `c${i}`, { qos: 1 });
    }
    let received: ReturnType<typeof collect> | undefined;
    const second = await connect(b.port, { clientId: 'mover', clean: false }, (client) => {
      received = collect(client);
    });
    try {
      const messages = await received!.waitFor(40, 15_000);
      const fromA = messages.filter((m) => m.topic === 'mv/a').map((m) => m.payload.toString());
      const fromC = messages.filter((m) => m.topic === 'mv/c').map((m) => m.payload.toString());
      assert.deepEqual(fromA, Array.from({ length: 20 }, (_, i) => `a${i}`));
      assert.deepEqual(fromC, Array.from({ length: 20 }, (_, i) => `c${i}`));
    } finally {
      await endClient(second);
    }
  } finally {
    await Promise.all([endClient(pubA), endClient(pubC)]);
  }
});

test('cluster: CONNECT with the same client id on node B closes the connection on node A (DISCONNECT 0x8E); the session moves (G9)', async () => {
  const { client: onA } = await RawClient.connect(a.port, 5, { clientId: 'twice', clean: false, properties: { sessionExpiryInterval: 300 } });
  try {
    await onA.subscribe('tw/#', 1);
    const { client: onB, connack } = await RawClient.connect(b.port, 5, { clientId: 'twice', clean: false, properties: { sessionExpiryInterval: 300 } });
    try {
      assert.equal(connack.sessionPresent, true, 'the session, with its subscription, came along');
      const disconnect = await onA.take('disconnect', () => true, 10_000);
      assert.equal(disconnect.reasonCode, 0x8e);
      await onA.waitClosed(5000);
      const pub = await connect(c.port, { clientId: 'tw-pub' });
      await pub.publishAsync('tw/after', 'after-takeover', { qos: 1 });
      await endClient(pub);
      const delivered = await onB.take('publish', (p) => p.topic === 'tw/after', 10_000);
      assert.equal(delivered.payload.toString(), 'after-takeover');
      onB.send({ cmd: 'puback', messageId: delivered.messageId });
      assert.deepEqual(payloads(onA.all('publish')), [], 'nothing reached the old connection');
    } finally {
      await onB.destroy();
    }
  } finally {
    await onA.destroy();
  }
});

test('cluster: a retained message set on A is served to a wildcard subscriber on B and cleared from C', async () => {
  const pubA = await connect(a.port, { clientId: 'rt-a' });
  await pubA.publishAsync('rt/room1/temp', '21.5', { qos: 1, retain: true });
  await endClient(pubA);
  const subB = await connect(b.port, { clientId: 'rt-b' });
  const atB = collect(subB);
  await subB.subscribeAsync('rt/+/temp', { qos: 1 });
  const [retained] = await atB.waitFor(1, 10_000);
  assert.equal(retained.payload.toString(), '21.5');
  assert.equal(retained.packet.retain, true);
  await endClient(subB);

  const pubC = await connect(c.port, { clientId: 'rt-c' });
  await pubC.publishAsync('rt/room1/temp', '', { qos: 1, retain: true });
  // A marker retained on another topic shows the subscription's retained messages were sent.
  await pubC.publishAsync('rt/room2/temp', 'marker', { qos: 1, retain: true });
  await endClient(pubC);
  const again = await connect(a.port, { clientId: 'rt-a2' });
  const atA = collect(again);
  await again.subscribeAsync('rt/+/temp', { qos: 1 });
  // The retained messages of one subscription are queued together, so a cleared one would come first.
  await atA.waitFor(1, 10_000);
  assert.deepEqual(atA.messages.map((m) => m.payload.toString()), ['marker']);
  await endClient(again);
});
