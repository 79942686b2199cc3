// The bounds of the embedded mode hold in cluster mode (G10): an offline session's queue keeps at
// most maxQueuedMessages with the same overflow policy, and an expired session is gone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { RawClient } from '../mqtt-helpers';
import { TestCluster, type ClusterNode } from './nodes';

const cluster = new TestCluster(['--max-queued-messages', '5', '--queue-overflow', 'drop-oldest']);
let a: ClusterNode;
let b: ClusterNode;

before(async () => {
  [a, b] = await cluster.startAll('bound-a', 'bound-b');
});

after(async () => {
  await cluster.stop();
});

test('cluster G10: an offline session keeps its newest maxQueuedMessages (drop-oldest) and gets them on another node', async () => {
  const props = { sessionExpiryInterval: 300 };
  const { client: first } = await RawClient.connect(a.port, 5, { clientId: 'bounded', clean: false, properties: props });
  await first.subscribe('bq/#', 1);
  await first.disconnect();
  const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'bounded-pub' });
  try {
    for (let i = 0; i < 20; i++) {
      pub.publish('bq/t', `m${i}`, 1, i + 1);
      await pub.take('puback', (p) => p.messageId === i + 1, 10_000);
    }
    // The node holding the offline session reads its inbox and applies the bound as messages come
    // in: its metric counts the 15 it dropped.
    const deadline = Date.now() + 15_000;
    let dropped = 0;
    while (dropped < 15 && Date.now() < deadline) {
      dropped = Number(/iotbridge_messages_dropped_total\{reason="queue_full"\} (\d+)/.exec(await metrics(a.adminPort))?.[1] ?? 0);
      if (dropped < 15) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(dropped, 15, 'dropped, counted in the metric of the node that held the session');
    const { client: again, connack } = await RawClient.connect(b.port, 5, { clientId: 'bounded', clean: false, properties: props });
    try {
      assert.equal(connack.sessionPresent, true);
      await again.take('publish', (p) => p.payload.toString() === 'm19', 10_000);
      for (const p of again.all('publish')) again.send({ cmd: 'puback', messageId: p.messageId });
      pub.publish('bq/t', 'marker', 1, 100);
      await again.take('publish', (p) => p.payload.toString() === 'marker', 10_000);
      assert.deepEqual(
        again.all('publish').map((p) => p.payload.toString()),
        ['m15', 'm16', 'm17', 'm18', 'm19', 'marker'],
      );
    } finally {
      await again.destroy();
    }
  } finally {
    await pub.destroy();
  }
});

test('cluster: a session past its expiry is gone on every node', async () => {
  const { client: first } = await RawClient.connect(a.port, 5, { clientId: 'expiring', clean: false, properties: { sessionExpiryInterval: 1 } });
  await first.subscribe('ex/#', 1);
  await first.disconnect();
  await new Promise((r) => setTimeout(r, 2500)); // past the 1 s expiry: whichever node looks at it next ends it
  const { client: again, connack } = await RawClient.connect(b.port, 5, { clientId: 'expiring', clean: false, properties: { sessionExpiryInterval: 1 } });
  try {
    assert.equal(connack.sessionPresent, false);
  } finally {
    await again.destroy();
  }
});

function metrics(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}
