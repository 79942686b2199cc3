// Two brokers behind one namesrv: routes list both, sends spread over both, and every message is
// read back from the broker that stored it. Starts a second broker through the same start module.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startLocalBroker, stopLocalBroker } from '../../scripts/rocketmq/local-rocketmq';
import { RocketMQClient } from '../../src/rocketmq';
import { localBrokerPort, localWorkDir, newClient, pullMessages, uniqueName } from './helpers';

const workDir = localWorkDir();
const skip = workDir === undefined ? 'needs the RocketMQ started by scripts/run-tests.js (ROCKETMQ_TEST_WORK_DIR)' : false;
const brokerB = { name: 'broker-b', port: localBrokerPort() + 1000 };

let client: RocketMQClient;

before(async () => {
  if (skip) return;
  await startLocalBroker(workDir as string, brokerB);
  client = newClient();
});

after(async () => {
  client?.close();
  if (!skip) await stopLocalBroker(workDir as string, brokerB.name);
});

test('routes and sends span both brokers; each message is pulled back from its broker', { skip }, async () => {
  const info = await client.clusterInfo();
  assert.ok(info.brokerAddrTable.has('broker-a') && info.brokerAddrTable.has('broker-b'), 'both brokers registered');
  const topic = uniqueName('TwoBrokers');
  await client.createTopic(topic, { queueNums: 2 });
  const queues = await client.getPublishQueues(topic);
  assert.deepEqual(
    queues.map((q) => `${q.brokerName}/${q.queueId}`),
    ['broker-a/0', 'broker-a/1', 'broker-b/0', 'broker-b/1'],
  );
  const sentBy = new Map<string, string[]>();
  for (let i = 0; i < 40; i++) {
    const r = await client.send({ topic, body: `msg-${i}`, shardingKey: `device-${i}` });
    const key = `${r.queue.brokerName}/${r.queue.queueId}`;
    sentBy.set(key, [...(sentBy.get(key) ?? []), `msg-${i}`]);
  }
  assert.ok([...sentBy.keys()].some((k) => k.startsWith('broker-a')), 'some messages on broker-a');
  assert.ok([...sentBy.keys()].some((k) => k.startsWith('broker-b')), 'some messages on broker-b');
  for (const q of await client.getSubscribeQueues(topic)) {
    const expected = sentBy.get(`${q.brokerName}/${q.queueId}`) ?? [];
    const { messages } = await pullMessages(client, q, 0, expected.length, { deadlineMs: 15_000 });
    assert.deepEqual(messages.map((m) => m.body.toString()), expected, `${q.brokerName}/${q.queueId}`);
    assert.equal(await client.getMaxOffset(q), expected.length);
  }
});

test('LMQ dispatch on the second broker is read back from that broker', { skip }, async () => {
  const topic = uniqueName('TwoBrokersLmq');
  await client.createTopic(topic, { queueNums: 1 });
  const lmq = `%LMQ%${uniqueName('b')}`;
  const r = await client.sendToLmqs({ topic, body: 'on b' }, [lmq], { queue: { topic, queueId: 0, brokerName: 'broker-b' } });
  assert.equal(r.queue.brokerName, 'broker-b');
  const pulled = await client.pull({ topic: lmq, queueId: 0, brokerName: 'broker-b' }, r.lmqOffsets.get(lmq) as number, { suspendMs: 5000 });
  assert.equal(pulled.messages[0]?.body.toString(), 'on b');
  const onA = await client.getMaxOffset({ topic: lmq, queueId: 0, brokerName: 'broker-a' });
  assert.equal(onA, 0, 'broker-a has nothing in that LMQ');
});
