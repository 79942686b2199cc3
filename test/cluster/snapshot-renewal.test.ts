// RocketMQ deletes old commit-log files (fileReservedTime), so a session that changes nothing for
// days must still have a snapshot young enough to be kept, in its session log and in the log of
// the node holding it (where the others find it if that node dies). The holder renews it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RocketMQClient } from '../../src/rocketmq';
import { digest } from '../../src/cluster/names';
import { readQueue } from '../../src/cluster/queue-tail';
import { decodeRecord } from '../../src/cluster/session-log';
import { RawClient } from '../mqtt-helpers';
import { sleep } from '../helpers';
import { newClient } from '../rocketmq/helpers';
import { TestCluster, type ClusterNode } from './nodes';

const cluster = new TestCluster(['--session-snapshot-renew-ms', '1000']);
let a: ClusterNode;
let b: ClusterNode;

before(async () => {
  [a, b] = await cluster.startAll('renew-a', 'renew-b');
});

after(async () => {
  await cluster.stop();
});

test('cluster: an idle session\'s snapshot is renewed in its log and its node\'s log, and the session is intact', async () => {
  const props = { sessionExpiryInterval: 300 };
  const { client: first } = await RawClient.connect(a.port, 5, { clientId: 'renewed', clean: false, properties: props });
  await first.subscribe('rn/#', 1);
  await first.disconnect();
  const mq = newClient();
  try {
    const sessionLog = `%LMQ%${cluster.name}_s_${digest('renewed')}`;
    const nodeLog = `%LMQ%${cluster.name}_n_${digest('renew-a')}`;
    const before = await snapshotsOf(mq, sessionLog, 'renewed');
    // Renewed every second: wait (bounded) until two more have been written.
    let inSessionLog = before;
    for (let i = 0; i < 60 && inSessionLog.length < before.length + 2; i++) {
      await sleep(500);
      inSessionLog = await snapshotsOf(mq, sessionLog, 'renewed');
    }
    const inNodeLog = await snapshotsOf(mq, nodeLog, 'renewed');
    assert.ok(inSessionLog.length >= before.length + 2, `snapshots in the session log: ${before.length} before, ${inSessionLog.length} after`);
    assert.ok(inNodeLog.length >= 3, `snapshots in the node log: ${inNodeLog.length}`);
    const last = inSessionLog.at(-1)!;
    assert.match(last.node, /^renew-a\//, 'written by the holder');
    assert.deepEqual(last.filters, ['rn/#'], 'with the session\'s state');

    const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'renew-pub' });
    const { client: again, connack } = await RawClient.connect(b.port, 5, { clientId: 'renewed', clean: false, properties: props });
    try {
      assert.equal(connack.sessionPresent, true);
      pub.publish('rn/x', 'still subscribed', 1, 1);
      await pub.take('puback');
      const delivered = await again.take('publish', () => true, 10_000);
      assert.equal(delivered.payload.toString(), 'still subscribed');
    } finally {
      await again.destroy();
      await pub.destroy();
    }
  } finally {
    mq.close();
  }
});

/** The snapshots of `clientId` in an LMQ (on every broker), in log order. */
async function snapshotsOf(mq: RocketMQClient, lmq: string, clientId: string): Promise<{ node: string; filters: string[] }[]> {
  const out: { node: string; filters: string[] }[] = [];
  const brokers = [...new Set((await mq.getPublishQueues(`${cluster.name}_log`)).map((q) => q.brokerName))];
  for (const brokerName of brokers) {
    for (const m of (await readQueue(mq, { topic: lmq, queueId: 0, brokerName }, 0)).messages) {
      const record = decodeRecord(m.body);
      if (record?.t !== 'snapshot' || (record.clientId !== undefined && record.clientId !== clientId)) continue;
      out.push({ node: record.node, filters: (record.state.record?.subscriptions ?? []).map((s) => s.filter) });
    }
  }
  return out;
}
