// Long polling: a pull at the end of a queue is held by the broker and answered when a message arrives.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RocketMQClient } from '../../src/rocketmq';
import { newClient, sleep, uniqueName } from './helpers';

let client: RocketMQClient;
let topic: string;

before(async () => {
  client = newClient();
  topic = uniqueName('LongPoll');
  await client.createTopic(topic, { queueNums: 1 });
});

after(() => client.close());

test('a suspended pull on a topic queue wakes up with the message sent while it waits', async () => {
  const queue = { topic, queueId: 0, brokerName: 'broker-a' };
  const end = await client.getMaxOffset(queue);
  // The broker holds this pull (suspend flag) for up to 20 s; it must come back with the message
  // sent below, not with NO_NEW_MSG.
  const waiting = client.pull(queue, end, { suspendMs: 20_000, maxMessages: 1 });
  await sleep(500);
  const sent = await client.send({ topic, body: 'wake up' }, { queue });
  const result = await waiting;
  assert.equal(result.status, 'FOUND');
  assert.equal(result.messages[0]?.body.toString(), 'wake up');
  assert.equal(result.messages[0]?.uniqKey, sent.msgId);
  assert.equal(result.nextBeginOffset, end + 1);
});

test('a suspended pull on an LMQ wakes up when a message is dispatched to it', async () => {
  const lmq = `%LMQ%${uniqueName('poll')}`;
  const queue = { topic: lmq, queueId: 0, brokerName: 'broker-a' };
  const waiting = client.pull(queue, 0, { suspendMs: 20_000, maxMessages: 1 });
  await sleep(500);
  const sent = await client.sendToLmqs({ topic, body: 'lmq wake up' }, [lmq], { queue: { topic, queueId: 0, brokerName: 'broker-a' } });
  const result = await waiting;
  assert.equal(result.status, 'FOUND');
  assert.equal(result.messages[0]?.body.toString(), 'lmq wake up');
  assert.equal(result.messages[0]?.uniqKey, sent.msgId);
});

test('a suspended pull with no message returns NO_NEW_MSG after the suspend time', async () => {
  const queue = { topic, queueId: 0, brokerName: 'broker-a' };
  const end = await client.getMaxOffset(queue);
  const result = await client.pull(queue, end, { suspendMs: 1000 });
  assert.equal(result.status, 'NO_NEW_MSG');
  assert.equal(result.messages.length, 0);
});
