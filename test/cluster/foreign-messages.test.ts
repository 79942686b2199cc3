// G10 on the read side: any RocketMQ application can write to the cluster's topics, so a message in
// a session's inbox may be foreign or malformed. It is skipped, acknowledged, logged with its id and
// counted; the messages around it are delivered in order, and it never comes back.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { connect, collect, endClient, sleep } from '../helpers';
import { readQueue } from '../../src/cluster/queue-tail';
import { newClient } from '../rocketmq/helpers';
import { TestCluster, type ClusterNode } from './nodes';

const cluster = new TestCluster();
let a: ClusterNode;
let b: ClusterNode;

before(async () => {
  [a, b] = await cluster.startAll('foreign-a', 'foreign-b');
});

after(async () => {
  await cluster.stop();
});

/** Bodies and properties a RocketMQ application might send that are not MQTT messages of the cluster. */
const BAD: { why: string; properties: Record<string, string> }[] = [
  { why: 'no MQTT properties at all', properties: {} },
  { why: 'a wildcard topic', properties: { mqtt_topic: 'fm/+', mqtt_qos: '1' } },
  { why: 'QoS 7', properties: { mqtt_topic: 'fm/x', mqtt_qos: '7' } },
  { why: 'user properties that are not pairs', properties: { mqtt_topic: 'fm/x', mqtt_qos: '1', mqtt_user_props: '{"a":5}' } },
  { why: 'user properties that are not JSON', properties: { mqtt_topic: 'fm/x', mqtt_qos: '1', mqtt_user_props: 'not json' } },
  { why: 'correlation data that is not base64', properties: { mqtt_topic: 'fm/x', mqtt_qos: '1', mqtt_correlation_data: '%%' } },
];

test('cluster G10: foreign and malformed messages in an inbox are skipped, counted and logged; the others arrive in order and nothing comes back', async () => {
  const options = { clientId: 'foreign-sub', clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 300 } };
  const sub = await connect(a.port, options);
  const received = collect(sub);
  await sub.subscribeAsync('fm/#', { qos: 1 });
  const pub = await connect(b.port, { clientId: 'foreign-pub' });
  const mq = newClient();
  try {
    const inbox = await inboxOf(mq, 'foreign-sub');
    const [queue] = await mq.getPublishQueues(`${cluster.name}_msg`);
    const inject = async (bad: (typeof BAD)[number]): Promise<void> => {
      await mq.sendToLmqs({ topic: `${cluster.name}_msg`, body: `bad: ${bad.why}`, properties: bad.properties }, [inbox], { queue: queue!, resolveLmqOffsets: false });
    };
    await pub.publishAsync('fm/x', 'good-0', { qos: 1 });
    for (const bad of BAD.slice(0, 3)) await inject(bad);
    await pub.publishAsync('fm/x', 'good-1', { qos: 1 });
    for (const bad of BAD.slice(3)) await inject(bad);
    await pub.publishAsync('fm/x', 'good-2', { qos: 1 });

    const got = await received.waitFor(3, 15_000);
    assert.deepEqual(got.map((m) => m.payload.toString()), ['good-0', 'good-1', 'good-2'], cluster.logs());
    assert.equal(await droppedUnreadable(a.adminPort), BAD.length, 'counted in iotbridge_messages_dropped_total{reason="unreadable"}');
    const logged = a.proc.output.join('').split('\n').filter((line) => line.includes('unreadable message in an inbox skipped'));
    assert.equal(logged.length, BAD.length, 'each logged once');
    for (const line of logged) assert.match(line, /"msgId":"[0-9A-Fa-f]{20,}"/, line);

    // They were acknowledged with the rest: the session, taken to the other node, holds nothing old.
    await endClient(sub);
    const again = await connect(b.port, options);
    const later = collect(again);
    try {
      await pub.publishAsync('fm/x', 'after', { qos: 1 });
      const [first] = await later.waitFor(1, 15_000);
      assert.equal(first?.payload.toString(), 'after');
      await sleep(300);
      assert.deepEqual(later.messages.map((m) => m.payload.toString()), ['after']);
    } finally {
      await endClient(again, true);
    }
  } finally {
    mq.close();
    await endClient(pub, true);
    await endClient(sub, true);
  }
});

test('cluster: a second copy of an acknowledged message (same UNIQ_KEY) that arrives after the session moved is dropped', async () => {
  const options = { clientId: 'dup-sub', clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 300 } };
  const first = await connect(a.port, options);
  const firstGot = collect(first);
  await first.subscribeAsync('dup/#', { qos: 1 });
  const pub = await connect(b.port, { clientId: 'dup-pub' });
  const mq = newClient();
  try {
    await pub.publishAsync('dup/x', 'original', { qos: 1 });
    await firstGot.waitFor(1, 15_000);
    await sleep(500); // its ack is stored
    await endClient(first);
    let received: ReturnType<typeof collect> | undefined;
    const second = await connect(b.port, options, (client) => (received = collect(client)));
    try {
      // A retried SEND (or a downlink message published by two nodes) lands its second copy now.
      const inbox = await inboxOf(mq, 'dup-sub');
      const original = await findInInbox(mq, inbox, 'original');
      const [queue] = await mq.getPublishQueues(`${cluster.name}_msg`);
      await mq.sendToLmqs(
        { topic: `${cluster.name}_msg`, body: 'original', properties: { mqtt_topic: 'dup/x', mqtt_qos: '1' }, uniqKey: original.uniqKey },
        [inbox],
        { queue: queue!, resolveLmqOffsets: false },
      );
      await pub.publishAsync('dup/x', 'marker', { qos: 1 });
      await received!.waitFor(1, 15_000);
      await sleep(300);
      assert.deepEqual(received!.messages.map((m) => m.payload.toString()), ['marker'], cluster.logs());
    } finally {
      await endClient(second, true);
    }
  } finally {
    mq.close();
    await endClient(pub, true);
    await endClient(first, true);
  }
});

/** The stored entry of an inbox whose body is `body` (on any broker). */
async function findInInbox(mq: ReturnType<typeof newClient>, inbox: string, body: string): Promise<{ uniqKey: string }> {
  const brokers = [...new Set((await mq.getPublishQueues(`${cluster.name}_msg`)).map((q) => q.brokerName))];
  for (const brokerName of brokers) {
    for (const m of (await readQueue(mq, { topic: inbox, queueId: 0, brokerName }, 0)).messages) {
      if (m.body.toString() === body && m.uniqKey) return { uniqKey: m.uniqKey };
    }
  }
  throw new Error(`${body} not found in ${inbox}`);
}

/** The inbox LMQ of a session, from its record in the subscription index (as any node reads it). */
async function inboxOf(mq: ReturnType<typeof newClient>, clientId: string): Promise<string> {
  for (const queue of await mq.getSubscribeQueues(`${cluster.name}_subs`)) {
    for (const m of (await readQueue(mq, queue, 0)).messages) {
      const record = JSON.parse(m.body.toString()) as { clientId: string; inbox: string };
      if (record.clientId === clientId) return record.inbox;
    }
  }
  throw new Error(`no index record of ${clientId}`);
}

function droppedUnreadable(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(Number(/iotbridge_messages_dropped_total\{reason="unreadable"\} (\d+)/.exec(body)?.[1] ?? NaN)));
      })
      .on('error', reject);
  });
}
