// G6: a subscription receives every message published after its SUBACK.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory-store';
import { collect, connect, endClient, startTestBroker } from '../helpers';
import { RawClient, payloads } from '../mqtt-helpers';
import { FaultyStore } from './stores';
import { range, waitUntil } from './wait';

test('G6: a message published right after SUBACK is delivered (QoS 0, 1, 2; MQTT 5 and 3.1.1; plain and wildcard filters)', async () => {
  const b = await startTestBroker();
  const clients: RawClient[] = [];
  try {
    const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'g6-pub' });
    clients.push(pub);
    for (const version of [5, 4] as const) {
      const { client: sub } = await RawClient.connect(b.port, version, { clientId: `g6-sub-${version}` });
      clients.push(sub);
      for (const qos of [0, 1, 2] as const) {
        for (const filter of [`g6/${version}/${qos}/x`, `g6/${version}/${qos}/+`, `g6/${version}/${qos}/#`]) {
          await sub.subscribe(filter, qos);
          const payload = `${filter}`;
          pub.publish(`g6/${version}/${qos}/x`, payload, qos, qos > 0 ? pub.id() : undefined);
          const got = await sub.take('publish', (p) => p.payload.toString() === payload);
          assert.equal(got.topic, `g6/${version}/${qos}/x`);
          if (qos > 0) sub.send({ cmd: qos === 1 ? 'puback' : 'pubrec', messageId: got.messageId });
          await sub.send({ cmd: 'unsubscribe', messageId: sub.id(), unsubscriptions: [filter] });
          await sub.take('unsuback');
        }
      }
    }
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});

test('G6: under a continuous publish stream, every message sent after the SUBACK arrives', async () => {
  const b = await startTestBroker();
  const pub = await connect(b.port, { protocolVersion: 5, clientId: 'g6s-pub' });
  const subs = await Promise.all([0, 1, 2].map((i) => connect(b.port, { protocolVersion: i === 1 ? 4 : 5, clientId: `g6s-sub-${i}` })));
  try {
    const firstAfterSuback: number[] = [];
    let n = 0;
    let stop = false;
    const stream = (async () => {
      while (!stop && n < 3000) await pub.publishAsync('g6s/t', String(++n), { qos: 1 });
    })();
    const received = subs.map(collect);
    for (let i = 0; i < subs.length; i++) {
      await waitUntil(() => n >= (i + 1) * 50, 'the stream to be under way');
      await subs[i].subscribeAsync('g6s/#', { qos: 1 });
      firstAfterSuback[i] = n + 1; // the publish after the one in flight now starts after the SUBACK
    }
    const last = n + 20;
    await waitUntil(() => n >= last, 'more messages after the last SUBACK');
    stop = true;
    await stream;
    for (let i = 0; i < subs.length; i++) {
      const want = range(firstAfterSuback[i], n);
      await waitUntil(() => received[i].messages.length >= want.length, `subscriber ${i} to catch up`);
      const got = new Set(received[i].messages.map((m) => Number(m.payload.toString())));
      assert.deepEqual(want.filter((x) => !got.has(x)), [], `subscriber ${i} missed messages published after its SUBACK`);
    }
  } finally {
    for (const c of [pub, ...subs]) await endClient(c, true);
    await b.stop();
  }
});

test('G6: a persistent subscription keeps receiving after its session reconnects', async () => {
  const b = await startTestBroker();
  const clients: RawClient[] = [];
  try {
    const { client: sub0 } = await RawClient.connect(b.port, 5, { clientId: 'g6p-sub', properties: { sessionExpiryInterval: 60 } });
    clients.push(sub0);
    await sub0.subscribe('g6p/#', 1);
    await sub0.disconnect();
    const { client: sub, connack } = await RawClient.connect(b.port, 5, { clientId: 'g6p-sub', clean: false, properties: { sessionExpiryInterval: 60 } });
    clients.push(sub);
    assert.equal(connack.sessionPresent, true);
    const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'g6p-pub' });
    clients.push(pub);
    pub.publish('g6p/t', 'after-reconnect', 1, 1);
    await sub.take('publish', (p) => p.payload.toString() === 'after-reconnect');
    assert.deepEqual(payloads(sub.all('publish')), ['after-reconnect']);
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});

test(
  'G6/G1: a SUBSCRIBE refused because the store failed (SUBACK 0x80) does not route messages',
  async () => {
    const store = new FaultyStore(new MemoryStore());
    store.failWhen = (ops) => ops.some((op) => op.op === 'putSession' && op.record.subscriptions.some((s) => s.filter === 'g6f/#'));
    const b = await startTestBroker({ publishMaxRetries: 1, publishRetryBaseMs: 1, publishRetryMaxMs: 2 }, { store });
    const clients: RawClient[] = [];
    try {
      const { client: sub } = await RawClient.connect(b.port, 5, { clientId: 'g6f-sub', properties: { sessionExpiryInterval: 60 } });
      clients.push(sub);
      store.failNext = 2;
      const suback = await sub.subscribe('g6f/#', 1);
      assert.deepEqual(suback.granted, [0x80]);
      await sub.subscribe('g6f-ok/#', 1);
      const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'g6f-pub' });
      clients.push(pub);
      pub.publish('g6f/t', 'not-subscribed', 1, 1);
      pub.publish('g6f-ok/t', 'subscribed', 1, 2);
      await sub.take('publish', (p) => p.payload.toString() === 'subscribed');
      await sub.ping();
      assert.deepEqual(payloads(sub.all('publish')), ['subscribed']);
    } finally {
      for (const c of clients) await c.destroy();
      await b.stop();
    }
  },
);

for (const version of [5, 4] as const) {
  test(`G6/G1 MQTT ${version === 5 ? '5' : '3.1.1'}: an UNSUBSCRIBE whose store commit failed is not acknowledged as done and the subscription stays`, async () => {
    const store = new FaultyStore(new MemoryStore());
    store.failWhen = (ops) => ops.some((op) => op.op === 'putSession' && op.record.subscriptions.length === 0);
    const b = await startTestBroker({ publishMaxRetries: 1, publishRetryBaseMs: 1, publishRetryMaxMs: 2 }, { store });
    const clients: RawClient[] = [];
    const props = version === 5 ? { sessionExpiryInterval: 60 } : undefined;
    try {
      const { client: sub } = await RawClient.connect(b.port, version, { clientId: 'g6u-sub', clean: false, properties: props });
      clients.push(sub);
      await sub.subscribe('g6u/#', 1);
      store.failNext = 2;
      sub.send({ cmd: 'unsubscribe', messageId: 9, unsubscriptions: ['g6u/#'] });
      let active = sub;
      if (version === 5) {
        const unsuback = await sub.take('unsuback');
        assert.deepEqual(unsuback.granted, [0x80]);
      } else {
        await sub.waitClosed(); // MQTT 3.1.1 cannot say no: the connection is closed, no UNSUBACK
        assert.deepEqual(sub.all('unsuback'), []);
        const again = await RawClient.connect(b.port, 4, { clientId: 'g6u-sub', clean: false });
        clients.push(again.client);
        assert.equal(again.connack.sessionPresent, true);
        active = again.client;
      }
      const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'g6u-pub' });
      clients.push(pub);
      pub.publish('g6u/t', 'still-subscribed', 1, 1);
      await active.take('publish', (p) => p.payload.toString() === 'still-subscribed');
    } finally {
      for (const c of clients) await c.destroy();
      await b.stop();
    }
  });
}
