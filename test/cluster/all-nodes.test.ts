// G9 racing, and G7 for the whole cluster: the same client id connecting to three nodes at once
// leaves one live connection; every node killed and new ones started, sessions and retained
// messages are all still there.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient } from '../mqtt-helpers';
import { TestCluster } from './nodes';

const LEASE_MS = 2000;
const cluster = new TestCluster(['--node-lease-ms', String(LEASE_MS)]);

after(async () => {
  await cluster.stop();
});

test('cluster G9: the same client id connecting to three nodes at once leaves exactly one live connection', async () => {
  const nodes = await cluster.startAll('race-a', 'race-b', 'race-c');
  for (let round = 0; round < 3; round++) {
    const attempts = await Promise.all(
      nodes.map(async (node) => {
        const client = await RawClient.open(node.port, 5);
        const connack = await client.sendConnect({ clientId: `racer-${round}`, clean: false, properties: { sessionExpiryInterval: 60 } }).catch(() => undefined);
        return { client, connack };
      }),
    );
    // Settle: every connection is either closed or answers a PING.
    const live: RawClient[] = [];
    for (const { client, connack } of attempts) {
      if (!connack || connack.reasonCode !== 0) continue;
      const alive = await client.ping(LEASE_MS * 3).then(
        () => !client.closed,
        () => false,
      );
      if (alive) live.push(client);
    }
    // A connection that got CONNACK and was taken over afterwards is closed by its node (0x8E):
    // wait (bounded) until at most one is open; two for longer is the bug this test is about.
    const deadline = Date.now() + 10_000;
    while (live.filter((c) => !c.closed).length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const stillOpen = live.filter((c) => !c.closed);
    assert.equal(stillOpen.length, 1, `round ${round}: ${stillOpen.length} live connections for one client id`);
    for (const { client } of attempts) await client.destroy();
  }
});

test('cluster G7: every node killed with kill -9 and new ones started: the persistent session, its queued message and the retained message are there', async () => {
  const [first] = [...cluster.nodes.values()];
  const { client: sub } = await RawClient.connect(first.port, 5, { clientId: 'phoenix', clean: false, properties: { sessionExpiryInterval: 600 } });
  await sub.subscribe('phoenix/#', 1);
  await sub.disconnect();
  const { client: pub } = await RawClient.connect(first.port, 5, { clientId: 'phoenix-pub' });
  pub.publish('phoenix/queued', 'kept', 1, 1);
  await pub.take('puback', (p) => p.messageId === 1, 10_000);
  pub.publish('phoenix/state', 'retained', 1, 2, { retain: true });
  await pub.take('puback', (p) => p.messageId === 2, 10_000);
  await pub.destroy();

  for (const id of [...cluster.nodes.keys()]) await cluster.kill9(id);
  const [fresh] = await cluster.startAll('reborn-a', 'reborn-b');

  // Until the old nodes' leases have run out on the new nodes, the CONNECT waits or is refused.
  const started = Date.now();
  let again: RawClient | undefined;
  let sessionPresent = false;
  while (!again) {
    assert.ok(Date.now() - started < LEASE_MS * 15, 'the session never became available');
    const attempt = await RawClient.connect(fresh.port, 5, { clientId: 'phoenix', clean: false, properties: { sessionExpiryInterval: 600 } }).catch(() => undefined);
    if (attempt?.connack.reasonCode === 0) {
      again = attempt.client;
      sessionPresent = attempt.connack.sessionPresent;
    } else await attempt?.client.destroy();
  }
  try {
    assert.equal(sessionPresent, true);
    const queued = await again.take('publish', (p) => p.topic === 'phoenix/queued', 10_000);
    assert.equal(queued.payload.toString(), 'kept');
    again.send({ cmd: 'puback', messageId: queued.messageId });
    const { client: late } = await RawClient.connect(fresh.port, 5, { clientId: 'phoenix-late' });
    const sub2 = await late.subscribe('phoenix/state', 1);
    assert.deepEqual(sub2.granted, [1]);
    const retained = await late.take('publish', (p) => p.topic === 'phoenix/state', 10_000);
    assert.equal(retained.payload.toString(), 'retained');
    assert.equal(retained.retain, true);
    await late.destroy();
  } finally {
    await again.destroy();
  }
});
