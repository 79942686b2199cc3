// RocketMQ down under a running cluster (G1 in cluster mode): QoS 1 publishes are not acknowledged
// while it is down (MQTT 5: PUBACK 0x80 once the retries are spent), connections stay up, /readyz
// says not ready; when it is back, everything acknowledged is delivered. Needs the RocketMQ that
// scripts/run-tests.js started (it is stopped and started again here).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startLocalBroker, stopLocalBroker } from '../../scripts/rocketmq/local-rocketmq';
import { RawClient } from '../mqtt-helpers';
import { localBrokerPort, localWorkDir } from '../rocketmq/helpers';
import { TestCluster, type ClusterNode } from './nodes';

const workDir = localWorkDir();
const skip = workDir === undefined ? 'needs the RocketMQ started by scripts/run-tests.js (ROCKETMQ_TEST_WORK_DIR)' : false;
const LEASE_MS = 3000;
const cluster = new TestCluster(['--node-lease-ms', String(LEASE_MS), '--publish-max-retries', '3', '--publish-retry-base-ms', '200']);
let a: ClusterNode;
let b: ClusterNode;

before(async () => {
  if (skip) return;
  [a, b] = await cluster.startAll('out-a', 'out-b');
});

after(async () => {
  await cluster.stop();
});

function readyz(port: number): Promise<number> {
  return new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port, path: '/readyz' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', () => resolve(0));
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('cluster G1: RocketMQ down: no PUBACK success, 0x80 after the retries, connections up, /readyz 503; back up: every acknowledged message delivered', { skip }, async () => {
  const { client: sub } = await RawClient.connect(b.port, 5, { clientId: 'out-sub', clean: false, properties: { sessionExpiryInterval: 600 } });
  const { client: pub } = await RawClient.connect(a.port, 5, { clientId: 'out-pub' });
  const acked: string[] = [];
  sub.onPacket((p) => {
    if (p.cmd === 'publish') sub.send({ cmd: 'puback', messageId: p.messageId });
  });
  try {
    await sub.subscribe('out/#', 1);
    for (let i = 1; i <= 10; i++) {
      pub.publish('out/t', `before-${i}`, 1, i);
      const ack = await pub.take('puback', (p) => p.messageId === i, 10_000);
      if ((ack.reasonCode ?? 0) === 0) acked.push(`before-${i}`);
    }

    await stopLocalBroker(workDir as string, 'broker-a');
    pub.publish('out/t', 'during-outage', 1, 100);
    const refused = await pub.take('puback', (p) => p.messageId === 100, 60_000);
    assert.equal(refused.reasonCode, 0x80, 'never a success for what RocketMQ did not store');
    await until('/readyz to say not ready', async () => (await readyz(a.adminPort)) === 503, LEASE_MS * 3);
    await pub.ping(10_000); // the connections stay up
    await sub.ping(10_000);

    await startLocalBroker(workDir as string, { name: 'broker-a', port: localBrokerPort() });
    await until('/readyz to say ready again', async () => (await readyz(a.adminPort)) === 200 && (await readyz(b.adminPort)) === 200, 120_000);
    for (let i = 1; i <= 10; i++) {
      const id = 200 + i;
      let ok = false;
      for (let attempt = 0; attempt < 20 && !ok; attempt++) {
        pub.publish('out/t', `after-${i}`, 1, id);
        ok = ((await pub.take('puback', (p) => p.messageId === id, 30_000)).reasonCode ?? 0) === 0;
        if (!ok) await new Promise((r) => setTimeout(r, 500));
      }
      assert.ok(ok, `after-${i} was never acknowledged`);
      acked.push(`after-${i}`);
    }
    await until(
      'every acknowledged message at the subscriber',
      async () => acked.every((m) => sub.all('publish').some((p) => p.payload.toString() === m)),
      60_000,
    );
    const delivered = sub.all('publish').map((p) => p.payload.toString());
    assert.equal(delivered.includes('during-outage'), false, 'the refused publish was not stored, so not delivered');
  } finally {
    await pub.destroy();
    await sub.destroy();
  }
});
