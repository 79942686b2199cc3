// Proves the bridge tests' backend service (test/bridge/java: the official RocketMQ Java client,
// driven through test/bridge/java-app.ts) against a real RocketMQ: what its producer sends, its orderly
// push consumer receives intact and in per-queue order.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RocketMQClient } from '../../src/rocketmq';
import { newClient, uniqueName } from '../rocketmq/helpers';
import { buildJavaApp, startConsumer, startProducer, type ConsumedMessage, type JavaConsumer, type JavaProducer, type SendOk } from './java-app';

const namesrv = process.env.ROCKETMQ_NAMESRV;
const skip = namesrv
  ? false
  : 'ROCKETMQ_NAMESRV is not set: start RocketMQ (`npm run rocketmq:start`) and run with ROCKETMQ_NAMESRV=127.0.0.1:19876';

let client: RocketMQClient | undefined;
let producer: JavaProducer | undefined;

before(async () => {
  if (skip) return;
  const t0 = Date.now();
  buildJavaApp();
  console.error(`# Java app build (or up-to-date check): ${Date.now() - t0} ms`);
  client = newClient();
  const t1 = Date.now();
  producer = await startProducer({ namesrv: namesrv as string });
  console.error(`# Java producer ready in ${Date.now() - t1} ms`);
});

after(async () => {
  await producer?.stop();
  client?.close();
});

function groupByQueue(messages: ConsumedMessage[]): Map<string, ConsumedMessage[]> {
  const byQueue = new Map<string, ConsumedMessage[]>();
  for (const m of messages) {
    const key = `${m.brokerName}/${m.queueId}`;
    byQueue.set(key, [...(byQueue.get(key) ?? []), m]);
  }
  return byQueue;
}

test('20 messages from the Java producer reach the Java orderly consumer with body, keys, tags and properties intact, in per-queue order', { skip, timeout: 180_000 }, async () => {
  assert.ok(client && producer);
  const topic = uniqueName('JavaApp');
  await client.createTopic(topic, { queueNums: 4 });

  const sent: Array<{ seq: number; body: Buffer; keys: string[]; tags: string; properties: Record<string, string>; result: SendOk }> = [];
  for (let seq = 0; seq < 20; seq++) {
    // Binary and UTF-8 bytes; one body over the client's 4 KiB compression threshold (sent zlib-compressed).
    const text = seq === 7 ? `big ${seq} `.repeat(2000) : `reading ${seq} ✓`;
    const body = Buffer.concat([Buffer.from(text, 'utf8'), Buffer.from([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff])]);
    const keys = [`key-${seq}`, `device-${seq % 3}`];
    const tags = seq % 2 === 0 ? 'even' : 'odd';
    const properties = {
      seq: String(seq),
      'température': '21.5 °C',
      separators: 'a,b;c=d:e|f&g%h i\nj\tk/l\\m"n\'o{p}[q]',
      'key with spaces': `value ${seq}`,
    };
    const result = await producer.sendOk({ topic, tags, keys, properties, body });
    assert.equal(result.status, 'SEND_OK');
    assert.match(result.msgId, /^[0-9A-F]{32,}$/);
    sent.push({ seq, body, keys, tags, properties, result });
  }
  assert.equal(new Set(sent.map((s) => s.result.queueId)).size, 4, 'the producer spread the messages over the 4 queues');

  const t0 = Date.now();
  const consumer: JavaConsumer = await startConsumer({ namesrv: namesrv as string, topic, group: uniqueName('JavaAppGroup') });
  try {
    console.error(`# Java consumer ready (rebalanced: ${consumer.rebalanced}) in ${Date.now() - t0} ms`);
    assert.ok(consumer.rebalanced, 'the only consumer of its group got queues before reporting ready');
    const got = await consumer.waitFor(20, 60_000);
    console.error(`# 20 messages consumed ${Date.now() - t0} ms after the consumer was started`);
    assert.equal(got.length, 20, 'no duplicates');
    assert.deepEqual(consumer.strayOutput, [], 'the consumer writes nothing but JSON lines to stdout');
    assert.deepEqual(producer.strayOutput, [], 'the producer writes nothing but JSON lines to stdout');

    const byId = new Map(got.map((m) => [m.msgId, m]));
    for (const s of sent) {
      const m = byId.get(s.result.msgId);
      assert.ok(m, `message ${s.seq} (${s.result.msgId}) was consumed`);
      assert.equal(m.topic, topic);
      assert.ok(m.body.equals(s.body), `body of ${s.seq} is identical (${m.body.length} vs ${s.body.length} bytes)`);
      assert.equal(m.tags, s.tags);
      assert.equal(m.keys, s.keys.join(' '));
      assert.equal(m.brokerName, s.result.brokerName);
      assert.equal(m.queueId, s.result.queueId);
      assert.equal(m.queueOffset, s.result.queueOffset);
      assert.equal(m.reconsumeTimes, 0);
      for (const [k, v] of Object.entries(s.properties)) assert.equal(m.properties[k], v, `property ${k} of ${s.seq}`);
      // System properties come along with the user ones.
      assert.equal(m.properties.UNIQ_KEY, s.result.msgId);
      assert.equal(m.properties.KEYS, s.keys.join(' '));
      assert.equal(m.properties.TAGS, s.tags);
    }

    // Per queue: arrival order is queue-offset order and send order.
    for (const [queue, messages] of groupByQueue(consumer.messages)) {
      const offsets = messages.map((m) => m.queueOffset);
      assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b), `queue ${queue}: offsets in arrival order`);
      assert.equal(new Set(offsets).size, offsets.length, `queue ${queue}: no offset twice`);
      const seqs = messages.map((m) => Number(m.properties.seq));
      const sentSeqs = sent.filter((s) => `${s.result.brokerName}/${s.result.queueId}` === queue).map((s) => s.seq);
      assert.deepEqual(seqs, sentSeqs, `queue ${queue}: consumed in send order`);
    }
  } finally {
    await consumer.stop();
  }
});

test('broadcasting consumers with a tag filter: each of two in one group gets every matching message', { skip, timeout: 180_000 }, async () => {
  assert.ok(client && producer);
  const topic = uniqueName('JavaAppBcast');
  await client.createTopic(topic, { queueNums: 4 });
  const group = uniqueName('JavaAppBcastGroup');
  const consumers = await Promise.all([0, 1].map(() => startConsumer({ namesrv: namesrv as string, topic, group, tags: 'odd || three', broadcast: true })));
  try {
    assert.notEqual(consumers[0]?.clientId, consumers[1]?.clientId, 'each process has its own client id (and local offset file)');
    assert.ok(consumers.every((c) => c.rebalanced), 'both hold all queues before reporting ready');
    const expected: string[] = [];
    for (let i = 0; i < 12; i++) {
      const tags = i % 3 === 0 ? 'three' : i % 2 === 1 ? 'odd' : 'even';
      const r = await producer.sendOk({ topic, tags, keys: `k${i}`, body: `b${i}` });
      if (tags !== 'even') expected.push(r.msgId);
    }
    for (const [n, c] of consumers.entries()) {
      const got = await c.waitFor(expected.length, 60_000);
      assert.deepEqual(got.map((m) => m.msgId).sort(), [...expected].sort(), `consumer ${n} got exactly the odd and three messages`);
      assert.ok(got.every((m) => m.tags !== 'even'));
    }
    // Nothing else trickles in late (broker-side tag hash filter plus the client's exact check).
    await new Promise((r) => setTimeout(r, 1000));
    for (const c of consumers) assert.equal(c.messages.length, expected.length);
  } finally {
    await Promise.all(consumers.map((c) => c.stop()));
  }
});

test('the official client refuses an empty body and reserved property names; the refusal comes back as ok:false', { skip, timeout: 60_000 }, async () => {
  assert.ok(client && producer);
  const topic = uniqueName('JavaAppRefused');
  await client.createTopic(topic, { queueNums: 1 });
  const empty = await producer.send({ topic, body: Buffer.alloc(0) });
  assert.equal(empty.ok, false);
  assert.match(empty.ok ? '' : empty.error, /body length is zero/);
  const reserved = await producer.send({ topic, body: 'x', properties: { KEYS: 'reserved' } });
  assert.equal(reserved.ok, false);
  assert.match(reserved.ok ? '' : reserved.error, /used by system/);
  // The producer keeps working after a refusal.
  const fine = await producer.send({ topic, body: 'after' });
  assert.equal(fine.ok, true);
  // RocketMQ counts an entry in the max offset once it is dispatched, a few ms after SEND_OK.
  const queue = { topic, brokerName: fine.ok ? fine.brokerName : '', queueId: 0 };
  let stored = 0;
  for (let i = 0; i < 100 && stored < 1; i++) {
    stored = await client.getMaxOffset(queue);
    if (stored < 1) await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(stored, 1, 'only the valid message was stored');
});
