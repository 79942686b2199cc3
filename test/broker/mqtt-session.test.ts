import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collect, connect, endClient, startTestBroker } from '../helpers';
import { RawClient, expectNothingMore, payloads, withBroker } from '../mqtt-helpers';

const persistent = {
  4: { clean: false },
  5: { clean: false, properties: { sessionExpiryInterval: 300 } },
};

for (const v of [4, 5] as const) {
  test(`v${v}: a persistent session keeps its subscriptions and queues QoS 1/2 messages while offline (not QoS 0)`, async () => {
    await withBroker(async (b, track) => {
      const c1 = await RawClient.connect(b.port, v, { clientId: 'ps', ...persistent[v] });
      c1.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'ps/+', qos: 2 }] });
      await c1.client.take('suback');
      c1.client.send({ cmd: 'disconnect' });
      await c1.client.waitClosed();

      const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'ps-pub' }));
      await pub.publishAsync('ps/a', 'q1', { qos: 1 });
      await pub.publishAsync('ps/a', 'q0', { qos: 0 });
      await pub.publishAsync('ps/b', 'q2', { qos: 2 });

      const c2 = await RawClient.connect(b.port, v, { clientId: 'ps', ...persistent[v] });
      track(c2.client);
      assert.equal(c2.connack.sessionPresent, true);
      const got = (await c2.client.takeMany('publish', 2));
      assert.deepEqual(
        got.map((p) => [p.topic, p.payload.toString(), p.qos, p.dup]),
        [
          ['ps/a', 'q1', 1, false],
          ['ps/b', 'q2', 2, false],
        ],
      );
      c2.client.send({ cmd: 'puback', messageId: got[0].messageId });
      c2.client.send({ cmd: 'pubrec', messageId: got[1].messageId });
      await c2.client.take('pubrel');
      c2.client.send({ cmd: 'pubcomp', messageId: got[1].messageId });
      await c2.client.expectNothingBefore(); // the QoS 0 message was not queued
      // Still subscribed: live messages keep coming.
      await pub.publishAsync('ps/c', 'live', { qos: 0 });
      assert.equal((await c2.client.take('publish')).payload.toString(), 'live');
    });
  });

  test(`v${v}: unacknowledged deliveries are re-sent on reconnect with DUP=1 and the same packet id; after PUBREC only PUBREL`, async () => {
    await withBroker(async (b, track) => {
      const c1 = await RawClient.connect(b.port, v, { clientId: 'dup', ...persistent[v] });
      c1.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'dup', qos: 2 }] });
      await c1.client.take('suback');
      const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'dup-pub' }));
      await pub.publishAsync('dup', 'one', { qos: 1 });
      await pub.publishAsync('dup', 'two', { qos: 2 });
      await pub.publishAsync('dup', 'three', { qos: 2 });
      const [p1, p2, p3] = (await c1.client.takeMany('publish', 3));
      c1.client.send({ cmd: 'pubrec', messageId: p3.messageId }); // 'three' reaches PUBREC
      await c1.client.take('pubrel');
      await c1.client.destroy();
      await c1.client.waitClosed();

      const c2 = await RawClient.connect(b.port, v, { clientId: 'dup', ...persistent[v] });
      track(c2.client);
      assert.equal(c2.connack.sessionPresent, true);
      const again = (await c2.client.takeMany('publish', 2));
      assert.deepEqual(
        again.map((p) => [p.payload.toString(), p.messageId, p.dup, p.qos]),
        [
          ['one', p1.messageId, true, 1],
          ['two', p2.messageId, true, 2],
        ],
      );
      const rel = await c2.client.take('pubrel');
      assert.equal(rel.messageId, p3.messageId);
      c2.client.send({ cmd: 'puback', messageId: p1.messageId });
      c2.client.send({ cmd: 'pubrec', messageId: p2.messageId });
      assert.equal((await c2.client.take('pubrel')).messageId, p2.messageId);
      c2.client.send({ cmd: 'pubcomp', messageId: p2.messageId });
      c2.client.send({ cmd: 'pubcomp', messageId: p3.messageId });
      c2.client.send({ cmd: 'pingreq' });
      await c2.client.take('pingresp');
      assert.equal(b.broker.sessions.get('dup')!.outbound.inflightCount, 0);
      await c2.client.expectNothingBefore();
      await c2.client.expectNothingBefore('ping', 'pubrel');
    });
  });

  test(`v${v}: inbound QoS 2 across a reconnect: PUBREL after reconnect gets PUBCOMP, a re-sent PUBLISH is not forwarded again`, async () => {
    await withBroker(async (b, track) => {
      const sub = track(await connect(b.port, { protocolVersion: 5, clientId: 'q2-sub' }));
      const g = collect(sub);
      await sub.subscribeAsync('q2', { qos: 2 });
      const c1 = await RawClient.connect(b.port, v, { clientId: 'q2', ...persistent[v] });
      c1.client.send({ cmd: 'publish', topic: 'q2', payload: Buffer.from('once'), qos: 2, messageId: 42, dup: false, retain: false });
      await c1.client.take('pubrec');
      await c1.client.destroy();
      await c1.client.waitClosed();
      const c2 = await RawClient.connect(b.port, v, { clientId: 'q2', ...persistent[v] });
      track(c2.client);
      c2.client.send({ cmd: 'publish', topic: 'q2', payload: Buffer.from('once'), qos: 2, messageId: 42, dup: true, retain: false });
      assert.equal((await c2.client.take('pubrec')).messageId, 42);
      c2.client.send({ cmd: 'pubrel', messageId: 42 });
      const comp = await c2.client.take('pubcomp');
      assert.equal(comp.messageId, 42);
      assert.ok(comp.cmd === 'pubcomp' && (comp.reasonCode === undefined || comp.reasonCode === 0));
      await g.waitFor(1);
      await expectNothingMore(sub, g);
      assert.equal(g.messages.length, 1);
    });
  });
}

test('3.1.1: clean session = 1 after a persistent session discards it (no queued messages, session present 0)', async () => {
  await withBroker(async (b, track) => {
    const c1 = await connect(b.port, { protocolVersion: 4, clientId: 'cs', clean: false });
    await c1.subscribeAsync('cs', { qos: 1 });
    await endClient(c1);
    const pub = track(await connect(b.port, { protocolVersion: 4, clientId: 'cs-pub' }));
    await pub.publishAsync('cs', 'queued', { qos: 1 });
    const c2 = await RawClient.connect(b.port, 4, { clientId: 'cs', clean: true });
    assert.equal(c2.connack.sessionPresent, false);
    await c2.client.expectNothingBefore();
    c2.client.send({ cmd: 'disconnect' });
    await c2.client.waitClosed();
    const c3 = await RawClient.connect(b.port, 4, { clientId: 'cs', clean: false });
    track(c3.client);
    assert.equal(c3.connack.sessionPresent, false);
    await pub.publishAsync('cs', 'after', { qos: 1 });
    await c3.client.expectNothingBefore();
  });
});

test('queueQos0Offline: QoS 0 messages are queued for offline persistent sessions when enabled', async () => {
  await withBroker(
    async (b, track) => {
      const c1 = await connect(b.port, { protocolVersion: 5, clientId: 'q0', clean: false, properties: { sessionExpiryInterval: 60 } });
      await c1.subscribeAsync('q0', { qos: 0 });
      await endClient(c1);
      const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'q0-pub' }));
      await pub.publishAsync('q0', 'kept', { qos: 0 });
      const { client } = await RawClient.connect(b.port, 5, { clientId: 'q0', clean: false, properties: { sessionExpiryInterval: 60 } });
      track(client);
      const m = await client.take('publish');
      assert.equal(m.payload.toString(), 'kept');
      assert.equal(m.qos, 0);
    },
    { queueQos0Offline: true },
  );
});

for (const [queueOverflow, expected] of [
  ['drop-oldest', ['2', '3', '4']],
  ['drop-new', ['0', '1', '2']],
] as const) {
  test(`offline queue bound: ${queueOverflow} keeps ${expected.join(',')} of 0..4 with maxQueuedMessages 3`, async () => {
    await withBroker(
      async (b, track) => {
        const c1 = await connect(b.port, { protocolVersion: 5, clientId: 'qb', clean: false, properties: { sessionExpiryInterval: 60 } });
        await c1.subscribeAsync('qb', { qos: 1 });
        await endClient(c1);
        const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'qb-pub' }));
        for (let i = 0; i < 5; i++) await pub.publishAsync('qb', String(i), { qos: 1 });
        const { client } = await RawClient.connect(b.port, 5, { clientId: 'qb', clean: false, properties: { sessionExpiryInterval: 60 } });
        track(client);
        const got = payloads(await client.takeMany('publish', 3));
        assert.deepEqual(got, expected);
        await client.expectNothingBefore();
        assert.equal(b.broker.stats.messagesDroppedQueueFull, 2);
      },
      { maxQueuedMessages: 3, queueOverflow },
    );
  });
}

test('persistent sessions, their subscriptions and offline queues survive a broker restart', async () => {
  let b = await startTestBroker();
  const dataDir = b.config.dataDir;
  try {
    const c1 = await connect(b.port, { protocolVersion: 5, clientId: 'rs5', clean: false, properties: { sessionExpiryInterval: 300 } });
    await c1.subscribeAsync('rs/#', { qos: 1, properties: { subscriptionIdentifier: 7 } });
    await endClient(c1);
    const c4 = await connect(b.port, { protocolVersion: 4, clientId: 'rs4', clean: false });
    await c4.subscribeAsync('rs/+', { qos: 2 });
    await endClient(c4);
    const pub = await connect(b.port, { protocolVersion: 5, clientId: 'rs-pub' });
    await pub.publishAsync('rs/a', 'before restart', { qos: 1 });
    await endClient(pub);
    await b.stop();

    b = await startTestBroker({ dataDir });
    const pub2 = await connect(b.port, { protocolVersion: 5, clientId: 'rs-pub' });
    await pub2.publishAsync('rs/b', 'after restart', { qos: 2 });
    await endClient(pub2);

    for (const clientId of ['rs5', 'rs4']) {
      const protocolVersion = clientId === 'rs5' ? 5 : 4;
      const { client, connack } = await RawClient.connect(b.port, protocolVersion, {
        clientId,
        ...(protocolVersion === 5 ? persistent[5] : persistent[4]),
      });
      try {
        assert.equal(connack.sessionPresent, true, clientId);
        const got = (await client.takeMany('publish', 2));
        assert.deepEqual(got.map((p) => p.payload.toString()), ['before restart', 'after restart'], clientId);
        if (protocolVersion === 5) assert.deepEqual(got[1].properties?.subscriptionIdentifier, 7);
        else assert.equal(got[1].qos, 2);
      } finally {
        await client.destroy();
      }
    }
  } finally {
    await b.stop();
  }
});

test('after a broker restart: in-flight deliveries are re-sent with DUP=1 and their packet ids, and inbound QoS 2 stays exactly once', async () => {
  let b = await startTestBroker();
  const dataDir = b.config.dataDir;
  const sub = { clientId: 'rsx', ...persistent[5] };
  const pubSession = { clientId: 'rsx-pub', ...persistent[5] };
  try {
    const s1 = await RawClient.connect(b.port, 5, sub);
    s1.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rsx/#', qos: 2 }] });
    await s1.client.take('suback');
    const p1 = await RawClient.connect(b.port, 5, pubSession);
    p1.client.send({ cmd: 'publish', topic: 'rsx/a', payload: Buffer.from('one'), qos: 1, messageId: 1, dup: false, retain: false });
    p1.client.send({ cmd: 'publish', topic: 'rsx/b', payload: Buffer.from('two'), qos: 2, messageId: 2, dup: false, retain: false });
    await p1.client.take('puback');
    await p1.client.take('pubrec'); // no PUBREL yet
    const sent = (await s1.client.takeMany('publish', 2));
    s1.client.send({ cmd: 'pubrec', messageId: sent[1].messageId });
    await s1.client.take('pubrel');
    await s1.client.destroy();
    await p1.client.destroy();
    await b.stop();

    b = await startTestBroker({ dataDir });
    const s2 = await RawClient.connect(b.port, 5, sub);
    try {
      assert.equal(s2.connack.sessionPresent, true);
      const again = await s2.client.take('publish');
      assert.deepEqual([again.payload.toString(), again.messageId, again.dup], ['one', sent[0].messageId, true]);
      assert.equal((await s2.client.take('pubrel')).messageId, sent[1].messageId);
      s2.client.send({ cmd: 'puback', messageId: again.messageId });
      s2.client.send({ cmd: 'pubcomp', messageId: sent[1].messageId });

      // The publisher re-sends its QoS 2 PUBLISH: acknowledged, not forwarded a second time.
      const p2 = await RawClient.connect(b.port, 5, pubSession);
      try {
        p2.client.send({ cmd: 'publish', topic: 'rsx/b', payload: Buffer.from('two'), qos: 2, messageId: 2, dup: true, retain: false });
        assert.equal((await p2.client.take('pubrec')).messageId, 2);
        p2.client.send({ cmd: 'pubrel', messageId: 2 });
        assert.equal((await p2.client.take('pubcomp')).messageId, 2);
        await s2.client.expectNothingBefore();
      } finally {
        await p2.client.destroy();
      }
    } finally {
      await s2.client.destroy();
    }
  } finally {
    await b.stop();
  }
});

test('maxInflight bounds unacknowledged deliveries to a 3.1.1 client too', async () => {
  await withBroker(
    async (b, track) => {
      const { client } = await RawClient.connect(b.port, 4, { clientId: 'mi' });
      track(client);
      client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'mi', qos: 1 }] });
      await client.take('suback');
      const pub = track(await connect(b.port, { protocolVersion: 4, clientId: 'mi-pub' }));
      for (let i = 0; i < 4; i++) await pub.publishAsync('mi', String(i), { qos: 1 });
      const first = (await client.takeMany('publish', 2));
      await client.expectNothingBefore();
      client.send({ cmd: 'puback', messageId: first[0].messageId });
      assert.equal((await client.take('publish')).payload.toString(), '2');
      await client.expectNothingBefore();
    },
    { maxInflight: 2 },
  );
});
