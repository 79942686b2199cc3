// Send and pull round trips against the real RocketMQ started by scripts/run-tests.js.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { InvalidArgumentError, InvalidParameterError, RocketMQClient } from '../../src/rocketmq';
import { MessageSysFlag } from '../../src/rocketmq/message-decoder';
import { queueIndexForKey } from '../../src/rocketmq/producer';
import { namesrvAddr, newClient, pullMessages, uniqueName } from './helpers';

let client: RocketMQClient;
let topic: string;

before(async () => {
  client = newClient();
  topic = uniqueName('SendPull');
  await client.createTopic(topic, { queueNums: 4 });
});

after(() => client.close());

test('properties with unicode and separator-like characters, tags and keys round-trip', async () => {
  const properties = {
    'température': '21.5 °C',
    'emoji😀': '✓ 温度 →',
    separators: 'a,b;c=d:e|f&g%h i\nj\tk/l\\m"n\'o{p}[q]',
    'key with spaces': 'value',
  };
  const sent = await client.send({ topic, body: 'unicode ✓', tags: 'tag-1', keys: ['k1', 'ключ'], properties });
  const pulled = await client.pull(sent.queue, sent.queueOffset, { maxMessages: 1, suspendMs: 5000 });
  assert.equal(pulled.status, 'FOUND');
  const m = pulled.messages[0];
  assert.ok(m);
  assert.equal(m.body.toString('utf8'), 'unicode ✓');
  assert.equal(m.tags, 'tag-1');
  assert.deepEqual(m.keys, ['k1', 'ключ']);
  assert.equal(m.uniqKey, sent.msgId);
  assert.equal(m.offsetMsgId, sent.offsetMsgId);
  assert.equal(m.queueOffset, sent.queueOffset);
  assert.equal(m.topic, topic);
  for (const [k, v] of Object.entries(properties)) assert.equal(m.properties[k], v, `property ${k}`);
});

test('RocketMQ property separators (\\u0001, \\u0002) are refused before sending', async () => {
  const before = await client.getMaxOffset({ topic, brokerName: 'broker-a', queueId: 0 });
  await assert.rejects(client.send({ topic, body: 'x', properties: { p: 'a\u0001b' } }, { queue: { topic, brokerName: 'broker-a', queueId: 0 } }), InvalidArgumentError);
  await assert.rejects(client.send({ topic, body: 'x', properties: { 'p\u0002': 'a' } }), InvalidArgumentError);
  await assert.rejects(client.send({ topic, body: 'x', properties: { KEYS: 'reserved' } }), InvalidArgumentError);
  assert.equal(await client.getMaxOffset({ topic, brokerName: 'broker-a', queueId: 0 }), before, 'nothing was stored');
});

test('empty body and 4 MiB body round-trip byte for byte', async () => {
  const big = Buffer.alloc(4 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32BE((i * 2654435761) >>> 0, i);
  const empty = await client.send({ topic, body: Buffer.alloc(0) });
  const large = await client.send({ topic, body: big }, { timeoutMs: 30_000 });
  const e = await client.pull(empty.queue, empty.queueOffset, { maxMessages: 1, suspendMs: 5000 });
  assert.equal(e.messages[0]?.body.length, 0);
  assert.equal(e.messages[0]?.uniqKey, empty.msgId);
  const l = await client.pull(large.queue, large.queueOffset, { maxMessages: 1, suspendMs: 5000, timeoutMs: 30_000 });
  assert.equal(l.status, 'FOUND');
  assert.equal(l.messages[0]?.uniqKey, large.msgId);
  assert.ok(l.messages[0]?.body.equals(big), '4 MiB body is identical');
});

test('zlib-compressed body is stored compressed and decoded on pull', async () => {
  const compressing = newClient({ compressBodyOverBytes: 1024 });
  try {
    const body = Buffer.from('telemetry '.repeat(10_000));
    const sent = await compressing.send({ topic, body });
    const pulled = await client.pull(sent.queue, sent.queueOffset, { maxMessages: 1, suspendMs: 5000 });
    const m = pulled.messages[0];
    assert.ok(m);
    assert.ok(m.storeSize < body.length / 4, `stored size ${m.storeSize} shows compression`);
    assert.equal(m.body.length, body.length);
    assert.ok(m.body.equals(body), 'decompressed body is identical');
    assert.equal(m.sysFlag & MessageSysFlag.COMPRESSED, 0);
  } finally {
    compressing.close();
  }
});

test('topic names longer than 127 characters: refused by the broker with a typed error; LMQ names may be longer', async () => {
  const longTopic = `T${'x'.repeat(140)}`;
  await assert.rejects(client.send({ topic: longTopic, body: 'x' }, { queue: { topic: longTopic, brokerName: 'broker-a', queueId: 0 } }), (err: unknown) => {
    return err instanceof InvalidParameterError && err.code === 29 && /longer than topic max length/.test(err.message);
  });
  const longLmq = `%LMQ%${uniqueName('L'.repeat(160))}`;
  const sent = await client.sendToLmqs({ topic, body: 'to a long LMQ' }, [longLmq]);
  const offset = sent.lmqOffsets.get(longLmq);
  assert.equal(offset, 0);
  const pulled = await client.pull({ topic: longLmq, brokerName: sent.queue.brokerName, queueId: 0 }, 0, { suspendMs: 5000 });
  assert.equal(pulled.messages[0]?.body.toString(), 'to a long LMQ');
});

test('a sharding key always selects the same queue, and order per key holds', async () => {
  const queues = await client.getPublishQueues(topic);
  const keys = ['device-1', 'device-2', 'device-3', 'device-42'];
  const sent = new Map<string, { queueId: number; offsets: number[] }>();
  for (let i = 0; i < 20; i++) {
    for (const key of keys) {
      const r = await client.send({ topic, body: `${key}#${i}`, shardingKey: key });
      const entry = sent.get(key) ?? { queueId: r.queue.queueId, offsets: [] };
      assert.equal(r.queue.queueId, entry.queueId, `${key} stays on one queue`);
      assert.equal(r.queue.queueId, queues[queueIndexForKey(key, queues.length)]?.queueId);
      entry.offsets.push(r.queueOffset);
      sent.set(key, entry);
    }
  }
  for (const [key, { queueId, offsets }] of sent) {
    const queue = { topic, brokerName: 'broker-a', queueId };
    const { messages } = await pullMessages(client, queue, offsets[0] as number, offsets[offsets.length - 1]! - offsets[0]! + 1);
    const mine = messages.filter((m) => m.body.toString().startsWith(`${key}#`)).map((m) => Number(m.body.toString().split('#')[1]));
    assert.deepEqual(mine, Array.from({ length: 20 }, (_, i) => i), `order of ${key}`);
  }
});

test('batch send stores consecutive messages in one queue', async () => {
  const messages = Array.from({ length: 10 }, (_, i) => ({ topic, body: `batch-${i}`, properties: { i: String(i) } }));
  const r = await client.sendBatch(messages, { queue: { topic, brokerName: 'broker-a', queueId: 2 } });
  const { messages: pulled } = await pullMessages(client, r.queue, r.firstQueueOffset, 10);
  assert.deepEqual(pulled.slice(0, 10).map((m) => m.body.toString()), messages.map((m) => m.body));
  assert.deepEqual(pulled.slice(0, 10).map((m) => m.uniqKey), r.msgIds);
});

test('pull statuses: NO_NEW_MSG at the end, OFFSET_ILLEGAL beyond it, NO_MATCHED_MSG for a tag filter', async () => {
  const queue = { topic, brokerName: 'broker-a', queueId: 3 };
  const sent = await client.send({ topic, body: 'tagged', tags: 'A' }, { queue });
  // A message becomes readable once the broker has dispatched it to the consume queue; wait for that.
  assert.equal((await client.pull(queue, sent.queueOffset, { suspendMs: 5000 })).status, 'FOUND');
  const max = await client.getMaxOffset(queue);
  assert.equal(max, sent.queueOffset + 1);
  const min = await client.getMinOffset(queue);
  assert.equal(min, 0);
  const atEnd = await client.pull(queue, max);
  assert.equal(atEnd.status, 'NO_NEW_MSG');
  assert.equal(atEnd.nextBeginOffset, max);
  const beyond = await client.pull(queue, max + 100);
  assert.equal(beyond.status, 'OFFSET_ILLEGAL');
  assert.equal(beyond.nextBeginOffset, max);
  const filtered = await client.pull(queue, max - 1, { subscription: 'B' });
  assert.equal(filtered.status, 'NO_MATCHED_MSG');
  assert.equal(filtered.nextBeginOffset, max);
});

test('several name servers: an unreachable first one fails over to the next; heartbeat registers', async () => {
  const failover = newClient({ namesrvAddr: ['127.0.0.1:1', namesrvAddr()] });
  try {
    const route = await failover.getTopicRoute(topic);
    assert.ok(route.queues.some((q) => q.brokerName === 'broker-a'));
    await failover.heartbeat();
    const sent = await failover.send({ topic, body: 'via failover' });
    assert.equal(sent.queue.topic, topic);
  } finally {
    failover.close();
  }
});
