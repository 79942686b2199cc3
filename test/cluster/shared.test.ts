// Shared subscriptions across nodes: each message goes to one member, and a member that leaves
// hands its unacknowledged messages to another member on another node.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient } from '../mqtt-helpers';
import { TestCluster, type ClusterNode } from './nodes';

const cluster = new TestCluster();
let a: ClusterNode;
let b: ClusterNode;

before(async () => {
  [a, b] = await cluster.startAll('share-a', 'share-b');
});

after(async () => {
  await cluster.stop();
});

test('cluster $share: members on two nodes each get a part, once; a member that leaves hands its unacknowledged messages to the other', async () => {
  const session = { clean: false, properties: { sessionExpiryInterval: 300 } };
  const { client: leaver } = await RawClient.connect(a.port, 5, { clientId: 'share-1', ...session });
  const { client: stayer } = await RawClient.connect(b.port, 5, { clientId: 'share-2', ...session });
  const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'share-pub' });
  try {
    await leaver.subscribe('$share/g/sh/#', 1);
    await stayer.subscribe('$share/g/sh/#', 1);
    stayer.onPacket((p) => {
      if (p.cmd === 'publish') stayer.send({ cmd: 'puback', messageId: p.messageId });
    });
    const total = 20;
    for (let i = 0; i < total; i++) {
      pub.publish('sh/t', `m${i}`, 1, i + 1);
      await pub.take('puback', (p) => p.messageId === i + 1, 10_000);
    }
    const deadline = Date.now() + 15_000;
    const got = () => leaver.all('publish').length + stayer.all('publish').length;
    while (got() < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const toLeaver = leaver.all('publish').map((p) => p.payload.toString());
    const toStayer = stayer.all('publish').map((p) => p.payload.toString());
    assert.equal(toLeaver.length + toStayer.length, total, `each message once: ${toLeaver.length} + ${toStayer.length}`);
    assert.ok(toLeaver.length > 0 && toStayer.length > 0, 'both members got a part');
    assert.deepEqual([...toLeaver, ...toStayer].sort(), Array.from({ length: total }, (_, i) => `m${i}`).sort());

    // The leaver never acknowledged its part; it goes away without DISCONNECT.
    await leaver.destroy();
    const moved = new Set(toLeaver);
    const until = Date.now() + 20_000;
    while ([...moved].some((m) => !stayer.all('publish').some((p) => p.payload.toString() === m)) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const missing = [...moved].filter((m) => !stayer.all('publish').some((p) => p.payload.toString() === m));
    assert.deepEqual(missing, [], 'the unacknowledged messages of the member that left reach the other member');
  } finally {
    await leaver.destroy();
    await stayer.destroy();
    await pub.destroy();
  }
});
