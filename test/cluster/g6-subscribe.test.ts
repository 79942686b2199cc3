// G6 in cluster mode, without a window: a message published on another node right after SUBACK
// reaches the new subscription, even when its filter is new to the whole cluster.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient } from '../mqtt-helpers';
import { TestCluster, type ClusterNode } from './nodes';

const cluster = new TestCluster();
let b: ClusterNode;
let c: ClusterNode;

before(async () => {
  [b, c] = await cluster.startAll('g6-b', 'g6-c');
});

after(async () => {
  await cluster.stop();
});

test('cluster G6: 150 rounds of SUBSCRIBE to a new wildcard filter on B, then PUBLISH on C right after SUBACK: every message arrives', async () => {
  const { client: sub } = await RawClient.connect(b.port, 5, { clientId: 'g6-sub' });
  const { client: pub } = await RawClient.connect(c.port, 5, { clientId: 'g6-pub' });
  try {
    const rounds = 150;
    for (let round = 0; round < rounds; round++) {
      const filter = round % 2 === 0 ? `g6/${round}/+/x` : `g6/${round}/#`; // never seen before by any node
      await sub.subscribe(filter, 1);
      pub.publish(`g6/${round}/a/x`, `m${round}`, 1, (round % 60000) + 1);
      const delivered = await sub.take('publish', (p) => p.topic === `g6/${round}/a/x`, 10_000);
      assert.equal(delivered.payload.toString(), `m${round}`);
      sub.send({ cmd: 'puback', messageId: delivered.messageId });
    }
    assert.equal(sub.all('publish').length, rounds);
  } finally {
    await sub.destroy();
    await pub.destroy();
  }
});
