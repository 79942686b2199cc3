// Two RocketMQ brokers behind one namesrv: the cluster spreads sessions and messages over both,
// and loses nothing acknowledged when one of them restarts. Starts (and stops) the second broker.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { startLocalBroker, stopLocalBroker } from '../../scripts/rocketmq/local-rocketmq';
import { connect, endClient, sleep } from '../helpers';
import { localBrokerPort, localWorkDir, newClient } from '../rocketmq/helpers';
import { TestCluster, type ClusterNode } from './nodes';

const workDir = localWorkDir();
const skip = workDir === undefined ? 'needs the RocketMQ started by scripts/run-tests.js (ROCKETMQ_TEST_WORK_DIR)' : false;
const brokerB = { name: 'broker-b', port: localBrokerPort() + 1000 };
// Publishes wait out a broker restart (retries up to about a minute) instead of being refused.
const cluster = new TestCluster(['--publish-max-retries', '40', '--publish-retry-max-ms', '1500']);
let a: ClusterNode;
let b: ClusterNode;

before(async () => {
  if (skip) return;
  await startLocalBroker(workDir as string, brokerB);
  [a, b] = await cluster.startAll('two-a', 'two-b');
});

after(async () => {
  await cluster.stop();
  if (!skip) await stopLocalBroker(workDir as string, brokerB.name);
});

test('cluster on two RocketMQ brokers: messages on both, and a restart of one loses nothing acknowledged', { skip }, async () => {
  const received = new Map<string, Set<number>>();
  const sub = await connect(b.port, { clientId: 'two-sub', clean: false, reconnectPeriod: 500 });
  sub.on('message', (topic, payload) => {
    const seen = received.get(topic) ?? new Set<number>();
    seen.add(Number(payload.toString()));
    received.set(topic, seen);
  });
  await sub.subscribeAsync('two/#', { qos: 1 });
  const publishers: MqttClient[] = [];
  const acked = new Map<string, number[]>();
  try {
    for (let p = 0; p < 10; p++) publishers.push(await connect(a.port, { clientId: `two-pub-${p}`, clean: false, reconnectPeriod: 500 }));
    const publishRound = async (from: number, to: number): Promise<void> => {
      await Promise.all(
        publishers.map(async (pub, p) => {
          for (let i = from; i < to; i++) {
            await pub.publishAsync(`two/${p}`, String(i), { qos: 1 });
            acked.set(`two/${p}`, [...(acked.get(`two/${p}`) ?? []), i]);
          }
        }),
      );
    };
    await publishRound(0, 10);

    // Both brokers hold messages of the cluster: publishers are spread by the hash of their id.
    const mq = newClient();
    try {
      const queues = await mq.getSubscribeQueues(`${cluster.name}_msg`);
      const perBroker = new Map<string, number>();
      for (const q of queues) perBroker.set(q.brokerName, (perBroker.get(q.brokerName) ?? 0) + (await mq.getMaxOffset(q)));
      assert.ok((perBroker.get('broker-a') ?? 0) > 0 && (perBroker.get('broker-b') ?? 0) > 0, `messages per broker: ${JSON.stringify([...perBroker])}`);
    } finally {
      mq.close();
    }

    const during = publishRound(10, 30);
    await sleep(300);
    await stopLocalBroker(workDir as string, brokerB.name);
    await startLocalBroker(workDir as string, brokerB);
    await during;
    await publishRound(30, 40);

    const deadline = Date.now() + 90_000;
    const missing = (): string[] =>
      [...acked].flatMap(([topic, seqs]) => seqs.filter((s) => !received.get(topic)?.has(s)).map((s) => `${topic}#${s}`));
    while (missing().length > 0 && Date.now() < deadline) await sleep(250);
    assert.deepEqual(missing(), [], `acknowledged but not delivered\n${cluster.logs()}`);
    assert.equal([...acked.values()].reduce((n, s) => n + s.length, 0), 400);
  } finally {
    for (const pub of publishers) await endClient(pub, true);
    await endClient(sub, true);
  }
});
