// Two RocketMQ brokers behind one namesrv: the cluster spreads sessions and messages over both,
// and loses nothing acknowledged when one of them restarts. Starts (and stops) the second broker.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { startLocalBroker, stopLocalBroker } from '../../scripts/rocketmq/local-rocketmq';
import { digest } from '../../src/cluster/names';
import { collect, connect, endClient, sleep } from '../helpers';
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

/** A client id whose session the cluster homes on `broker` (rendezvous hashing, docs/cluster.md §3). */
function homedOn(broker: string, prefix: string): string {
  const brokers = ['broker-a', 'broker-b'];
  for (let i = 0; i < 1000; i++) {
    const id = `${prefix}-${i}`;
    const home = brokers.reduce((best, b) => (digest(`${b}\n${id}`) > digest(`${best}\n${id}`) ? b : best));
    if (home === broker) return id;
  }
  throw new Error('no client id found');
}

test('cluster: a node started while a broker of the recorded set is down waits for it, then finds the sessions homed there', { skip }, async () => {
  const subId = homedOn('broker-b', 'home-b');
  const options = { clientId: subId, clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 300 } };
  const first = await connect(a.port, options);
  await first.subscribeAsync('hb/#', { qos: 1 });
  await endClient(first);

  await stopLocalBroker(workDir as string, brokerB.name);
  let brokerBRunning = false;
  try {
    // Published while broker-b is down, by a client homed on broker-a: stored in the inbox's instance there.
    const pub = await connect(a.port, { clientId: homedOn('broker-a', 'home-a'), reconnectPeriod: 0 });
    await pub.publishAsync('hb/x', 'while-b-down', { qos: 1 });
    await endClient(pub);

    // The name server lists only broker-a now. A node that took that for the broker set would home
    // the session on broker-a and find nothing; it must wait for broker-b instead.
    let started = false;
    const starting = cluster.start('two-c').then((node) => {
      started = true;
      return node;
    });
    starting.catch(() => undefined);
    await sleep(4000);
    assert.equal(started, false, 'the node served while a broker of the recorded set was down');
    await startLocalBroker(workDir as string, brokerB);
    brokerBRunning = true;
    const c = await starting;
    assert.match(c.proc.output.join(''), /waiting for RocketMQ brokers/);

    let sessionPresent: boolean | undefined;
    let received: ReturnType<typeof collect> | undefined;
    const again = await connect(c.port, options, (client) => {
      received = collect(client);
      client.once('connect', (connack) => (sessionPresent = connack.sessionPresent));
    });
    try {
      assert.equal(sessionPresent, true, 'the session homed on broker-b');
      const [message] = await received!.waitFor(1, 20_000);
      assert.equal(message?.payload.toString(), 'while-b-down', cluster.logs());
    } finally {
      await endClient(again, true);
    }
  } finally {
    if (!brokerBRunning) await startLocalBroker(workDir as string, brokerB);
  }
});
