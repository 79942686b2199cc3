// Long polling: a pull at the end of a queue is held by the broker and answered when a message arrives.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RocketMQClient } from '../../src/rocketmq';
import type { PullResult } from '../../src/rocketmq/consumer';
import type { MessageQueue } from '../../src/rocketmq/route';
import { newClient, uniqueName } from './helpers';

let client: RocketMQClient;
/** Pulls with its own connection and no retries: a message can only come back on the one request. */
let puller: RocketMQClient;
let topic: string;

before(async () => {
  client = newClient();
  puller = newClient({ idempotentRetries: 0 });
  topic = uniqueName('LongPoll');
  await client.createTopic(topic, { queueNums: 1 });
});

after(() => {
  client.close();
  puller.close();
});

/**
 * Starts a pull held by the broker (suspend flag, up to 20 s) at `offset`, and returns once the
 * broker has shown that it holds it: pulls sent after it on the same connection, without the flag,
 * come back (empty) while it is still unanswered. A broker that did not hold it would have answered
 * it the same way by then, and the message sent afterwards could not be on it.
 */
async function heldPull(queue: MessageQueue, offset: number): Promise<{ result: Promise<PullResult> }> {
  let settled = false;
  const result = puller.pull(queue, offset, { suspendMs: 20_000, maxMessages: 1 });
  void result.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 3; i++) {
    const control = await puller.pull(queue, offset, { maxMessages: 1 });
    assert.equal(control.messages.length, 0, 'nothing at this offset yet');
  }
  assert.equal(settled, false, 'the broker answered the suspended pull without a message instead of holding it');
  return { result }; // in an object: an async function would wait for a promise it returned
}

test('a suspended pull on a topic queue wakes up with the message sent while it waits', async () => {
  const queue = { topic, queueId: 0, brokerName: 'broker-a' };
  const end = await client.getMaxOffset(queue);
  const held = await heldPull(queue, end);
  const sent = await client.send({ topic, body: 'wake up' }, { queue });
  const result = await held.result;
  assert.equal(result.status, 'FOUND');
  assert.equal(result.messages[0]?.body.toString(), 'wake up');
  assert.equal(result.messages[0]?.uniqKey, sent.msgId);
  assert.equal(result.nextBeginOffset, end + 1);
});

test('a suspended pull on an LMQ wakes up when a message is dispatched to it', async () => {
  const lmq = `%LMQ%${uniqueName('poll')}`;
  const queue = { topic: lmq, queueId: 0, brokerName: 'broker-a' };
  const held = await heldPull(queue, 0);
  const sent = await client.sendToLmqs({ topic, body: 'lmq wake up' }, [lmq], { queue: { topic, queueId: 0, brokerName: 'broker-a' } });
  const result = await held.result;
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
