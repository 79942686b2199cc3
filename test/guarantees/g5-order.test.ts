// G5: order per publisher per topic (MQTT 4.6) through queues, reconnects and takeover.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Store, type MqttClient } from 'mqtt';
import { connect, endClient, startTestBroker } from '../helpers';
import { RawClient } from '../mqtt-helpers';
import { firstAppearances, range, waitUntil } from './wait';

test('G5: per-topic order holds for QoS 1 and QoS 2 through a small in-flight window, a reconnect and a takeover', async () => {
  const N = 300;
  const b = await startTestBroker({ maxInflight: 3 });
  const clients: MqttClient[] = [];
  const seen: Record<'q1' | 'q2', number[]> = { q1: [], q2: [] };
  // mqtt.js hands a QoS 2 message over at PUBREL, from its incoming store: the client's side of the
  // session must outlive a connection as the broker's does, so every connection shares one store.
  const incomingStore = new Store({ clean: false });
  const subscriber = async () => {
    const c = await connect(
      b.port,
      { protocolVersion: 5, clientId: 'g5-sub', clean: false, properties: { sessionExpiryInterval: 300 }, incomingStore },
      (client) => client.on('message', (topic, payload) => seen[topic === 'g5/q1' ? 'q1' : 'q2'].push(Number(payload.toString()))),
    );
    clients.push(c);
    return c;
  };
  try {
    const sub = await subscriber();
    await sub.subscribeAsync('g5/#', { qos: 2 });
    const pub = await connect(b.port, { protocolVersion: 5, clientId: 'g5-pub' });
    clients.push(pub);
    const sends: Promise<unknown>[] = [];
    for (let i = 1; i <= N; i++) {
      sends.push(pub.publishAsync('g5/q1', String(i), { qos: 1 }));
      sends.push(pub.publishAsync('g5/q2', String(i), { qos: 2 }));
    }
    await waitUntil(() => seen.q1.length >= 60, 'the first deliveries', 10_000);
    await endClient(sub, true); // reconnect with the same session
    await subscriber();
    await waitUntil(() => seen.q1.length >= 150, 'deliveries after the reconnect', 10_000);
    await subscriber(); // takeover: the broker closes the previous connection
    await Promise.all(sends);
    await waitUntil(() => firstAppearances(seen.q1).length === N && firstAppearances(seen.q2).length === N, 'every message', 15_000);
    assert.deepEqual(firstAppearances(seen.q1), range(1, N), 'QoS 1 in publish order');
    assert.deepEqual(firstAppearances(seen.q2), range(1, N), 'QoS 2 in publish order');
    assert.deepEqual(seen.q2, range(1, N), 'QoS 2: each exactly once');
  } finally {
    for (const c of clients) await endClient(c, true);
    await b.stop();
  }
});

test('G5: messages queued for an offline session arrive in order, interleaved topics each in order', async () => {
  const b = await startTestBroker({ maxInflight: 2 });
  const clients: RawClient[] = [];
  try {
    const { client: sub0 } = await RawClient.connect(b.port, 4, { clientId: 'g5o-sub', clean: false });
    clients.push(sub0);
    await sub0.subscribe('g5o/+', 1);
    await sub0.disconnect();
    const { client: pub } = await RawClient.connect(b.port, 4, { clientId: 'g5o-pub' });
    clients.push(pub);
    for (let i = 1; i <= 50; i++) pub.publish(i % 2 ? 'g5o/odd' : 'g5o/even', String(i), 1, i);
    for (let i = 1; i <= 50; i++) await pub.take('puback', (p) => p.messageId === i);

    const { client: sub } = await RawClient.connect(b.port, 4, { clientId: 'g5o-sub', clean: false });
    clients.push(sub);
    const got: number[] = [];
    while (got.length < 50) {
      const p = await sub.take('publish');
      got.push(Number(p.payload.toString()));
      sub.send({ cmd: 'puback', messageId: p.messageId }); // the window is 2: acks let the rest flow
    }
    assert.deepEqual(got, range(1, 50));
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});
