// Light Message Queues: one send dispatched to several LMQs, each read back by offset;
// consumer offsets for %LMQ% groups.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { InvalidArgumentError, RocketMQClient } from '../../src/rocketmq';
import { newClient, pullMessages, uniqueName } from './helpers';

let client: RocketMQClient;
let topic: string;

before(async () => {
  client = newClient();
  topic = uniqueName('LmqParent');
  await client.createTopic(topic);
});

after(() => client.close());

test('one send is dispatched to three LMQs; each LMQ returns it at the offset the send reported', async () => {
  const lmqs = [uniqueName('a'), uniqueName('b'), uniqueName('c')];
  // Give the second LMQ a head start so the three offsets differ.
  await client.sendToLmqs({ topic, body: 'warm-up' }, [lmqs[1] as string]);
  const results = [];
  for (let i = 0; i < 3; i++) {
    results.push(await client.sendToLmqs({ topic, body: `to-all-${i}`, properties: { n: String(i) }, shardingKey: 'dev' }, lmqs));
  }
  for (const [i, r] of results.entries()) {
    assert.deepEqual(r.lmqNames, lmqs.map((n) => `%LMQ%${n}`));
    assert.equal(r.lmqOffsets.get(`%LMQ%${lmqs[0]}`), i);
    assert.equal(r.lmqOffsets.get(`%LMQ%${lmqs[1]}`), i + 1);
    assert.equal(r.lmqOffsets.get(`%LMQ%${lmqs[2]}`), i);
  }
  const brokerName = results[0]?.queue.brokerName as string;
  for (const name of results[0]?.lmqNames ?? []) {
    const queue = { topic: name, queueId: 0, brokerName };
    for (const [i, r] of results.entries()) {
      const offset = r.lmqOffsets.get(name) as number;
      const pulled = await client.pull(queue, offset, { maxMessages: 1, suspendMs: 5000 });
      assert.equal(pulled.status, 'FOUND', `${name}@${offset}`);
      const m = pulled.messages[0];
      assert.ok(m);
      assert.equal(m.body.toString(), `to-all-${i}`);
      assert.equal(m.queueOffset, offset, 'queueOffset is the LMQ offset, not the parent queue offset');
      assert.equal(m.queueId, 0);
      assert.equal(m.topic, topic, 'the stored message keeps its parent topic');
      assert.equal(m.uniqKey, r.msgId);
      assert.equal(m.properties.n, String(i));
    }
    const max = await client.getMaxOffset(queue);
    assert.equal(max, (results[2]?.lmqOffsets.get(name) as number) + 1);
    assert.equal(await client.getMinOffset(queue), 0);
  }
  // The parent queue holds each message once.
  const parent = results[0]?.queue;
  assert.ok(parent);
  const { messages } = await pullMessages(client, parent, results[0]?.queueOffset as number, 3);
  assert.deepEqual(messages.map((m) => m.body.toString()), ['to-all-0', 'to-all-1', 'to-all-2']);
});

test('LMQ names are checked: path separators, commas and empty bodies are refused before sending', async () => {
  await assert.rejects(client.sendToLmqs({ topic, body: 'x' }, ['a/b']), InvalidArgumentError);
  await assert.rejects(client.sendToLmqs({ topic, body: 'x' }, ['a,b']), InvalidArgumentError);
  await assert.rejects(client.sendToLmqs({ topic, body: 'x' }, ['x', 'x']), InvalidArgumentError);
  await assert.rejects(client.sendToLmqs({ topic, body: '' }, ['x']), InvalidArgumentError);
});

test('consumer offsets of %LMQ% groups are stored, queried and updated by the broker', async () => {
  const lmq = `%LMQ%${uniqueName('off')}`;
  const r = await client.sendToLmqs({ topic, body: 'x' }, [lmq]);
  const queue = { topic: lmq, queueId: 0, brokerName: r.queue.brokerName };
  const group = `%LMQ%${uniqueName('group')}`;
  assert.equal(await client.queryConsumerOffset(group, queue), undefined);
  await client.updateConsumerOffset(group, queue, 1);
  assert.equal(await client.queryConsumerOffset(group, queue), 1);
  await client.updateConsumerOffset(group, queue, 0);
  assert.equal(await client.queryConsumerOffset(group, queue), 0);
});
