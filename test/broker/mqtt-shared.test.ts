import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collect, connect } from '../helpers';
import { waitUntil } from '../guarantees/wait';
import { RawClient, arrivedBeforeMarker, expectNothingMore, payloads, pingBroker, withBroker } from '../mqtt-helpers';

test('shared subscription: each message goes to exactly one member, load-balanced; plain subscribers get every message', async () => {
  await withBroker(async (b, track) => {
    const m1 = track(await connect(b.port, { protocolVersion: 5, clientId: 'm1' }));
    const m2 = track(await connect(b.port, { protocolVersion: 4, clientId: 'm2' })); // 3.1.1 members work too
    const other = track(await connect(b.port, { protocolVersion: 5, clientId: 'og' }));
    const plain = track(await connect(b.port, { protocolVersion: 5, clientId: 'plain' }));
    const g1 = collect(m1);
    const g2 = collect(m2);
    const go = collect(other);
    const gp = collect(plain);
    await m1.subscribeAsync('$share/g/sh/+', { qos: 1 });
    await m2.subscribeAsync('$share/g/sh/+', { qos: 1 });
    await other.subscribeAsync('$share/h/sh/#', { qos: 1 });
    await plain.subscribeAsync('sh/+', { qos: 1 });
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'shp' }));
    const n = 10;
    for (let i = 0; i < n; i++) await pub.publishAsync(`sh/${i}`, String(i), { qos: 1 });
    // Every publish was acknowledged, so routed: each member's share is there by its PINGRESP.
    for (const c of [m1, m2, other, plain]) await pingBroker(c);
    const a = g1.messages.map((m) => Number(m.payload.toString()));
    const c = g2.messages.map((m) => Number(m.payload.toString()));
    assert.deepEqual([...a, ...c].sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i), 'each message to exactly one member of g');
    assert.ok(a.length >= 3 && c.length >= 3, `balanced: ${a.length} / ${c.length}`);
    assert.equal(go.messages.length, n, 'a second group gets every message too');
    assert.equal(gp.messages.length, n);
    // Deliveries through a shared subscription keep the topic of the message.
    assert.ok(g1.messages.every((m) => m.topic === `sh/${m.payload.toString()}`));
  });
});

test('shared subscription: unacknowledged QoS 1 messages of a member that disconnects go to another member', async () => {
  await withBroker(async (b, track) => {
    const { client: silent } = await RawClient.connect(b.port, 5, { clientId: 'silent' });
    silent.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/work/jobs', qos: 1 }] });
    assert.deepEqual((await silent.take('suback')).granted, [1]);
    const worker = track(await connect(b.port, { protocolVersion: 5, clientId: 'worker' }));
    const gw = collect(worker);
    await worker.subscribeAsync('$share/work/jobs', { qos: 1 });
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'jobs-pub' }));
    const n = 6;
    for (let i = 0; i < n; i++) await pub.publishAsync('jobs', `job-${i}`, { qos: 1 });
    // Round robin: half each. The silent member acknowledges nothing and drops its connection.
    const withheld = payloads(await silent.takeMany('publish', n / 2));
    await gw.waitFor(n / 2);
    await silent.destroy();
    const all = await gw.waitFor(n);
    await expectNothingMore(worker, gw); // each withheld job handed over once
    const workerJobs = all.map((m) => m.payload.toString());
    assert.deepEqual([...workerJobs].sort(), Array.from({ length: n }, (_, i) => `job-${i}`), `withheld ${withheld}`);
    // The handed-over messages keep their QoS.
    assert.ok(all.every((m) => m.packet.qos === 1));
  });
});

test('shared subscription: a persistent member that disconnects hands its unacknowledged messages over too', async () => {
  await withBroker(async (b, track) => {
    const first = await RawClient.connect(b.port, 5, { clientId: 'pm', clean: false, properties: { sessionExpiryInterval: 60 } });
    first.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/p/pj', qos: 1 }] });
    await first.client.take('suback');
    const other = track(await connect(b.port, { protocolVersion: 5, clientId: 'pother' }));
    const go = collect(other);
    await other.subscribeAsync('$share/p/pj', { qos: 1 });
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'pj-pub' }));
    for (let i = 0; i < 4; i++) await pub.publishAsync('pj', `j${i}`, { qos: 1 });
    const held = payloads(await first.client.takeMany('publish', 2));
    await first.client.destroy();
    const got = await go.waitFor(4);
    assert.deepEqual(got.map((m) => m.payload.toString()).sort(), ['j0', 'j1', 'j2', 'j3'], `held ${held}`);
    // The persistent member reconnects: its handed-over messages are not sent again.
    const back = await RawClient.connect(b.port, 5, { clientId: 'pm', clean: false, properties: { sessionExpiryInterval: 60 } });
    track(back.client);
    await back.client.expectNothingBefore();
  });
});

test('shared subscription: members of a group with different filters are separate groups; unsubscribe leaves the group', async () => {
  await withBroker(async (b, track) => {
    const a = track(await connect(b.port, { protocolVersion: 5, clientId: 'ua' }));
    const c = track(await connect(b.port, { protocolVersion: 5, clientId: 'uc' }));
    const ga = collect(a);
    const gc = collect(c);
    await a.subscribeAsync('$share/u/us/#', { qos: 0 });
    await c.subscribeAsync('$share/u/us/#', { qos: 0 });
    await c.unsubscribeAsync('$share/u/us/#');
    const d = track(await connect(b.port, { protocolVersion: 5, clientId: 'ud' }));
    const gd = collect(d);
    await d.subscribeAsync('$share/u/us/x', { qos: 0 });
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'us-pub' }));
    for (let i = 0; i < 4; i++) await pub.publishAsync('us/x', String(i), { qos: 1 });
    await ga.waitFor(4);
    await gd.waitFor(4);
    await expectNothingMore(a, ga);
    await expectNothingMore(c, gc);
    assert.equal(gc.messages.length, 0);
    assert.equal(ga.messages.length, 4);
  });
});

test('shared subscription: No Local on a shared subscription is a protocol error (DISCONNECT 0x82)', async () => {
  await withBroker(async (b) => {
    const { client } = await RawClient.connect(b.port, 5, { clientId: 'snl' });
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/x', qos: 1, nl: true }] });
    const d = await client.take('disconnect');
    assert.equal(d.cmd === 'disconnect' && d.reasonCode, 0x82);
    await client.waitClosed();
  });
});

test('shared subscription: a QoS 2 delivery in progress is not handed to another member; it completes on reconnect (MQTT-4.8.2-4)', async () => {
  await withBroker(async (b, track) => {
    const persistentMember = { clientId: 'q2m', clean: false, properties: { sessionExpiryInterval: 60 } };
    const first = await RawClient.connect(b.port, 5, persistentMember);
    first.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/q2/work', qos: 2 }] });
    await first.client.take('suback');
    const other = track(await connect(b.port, { protocolVersion: 5, clientId: 'q2other' }));
    const go = collect(other);
    await other.subscribeAsync('$share/q2/work', { qos: 2 });
    await other.subscribeAsync('q2/marker', { qos: 1 });
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'q2pub' }));
    await pub.publishAsync('work', 'a', { qos: 2 });
    await pub.publishAsync('work', 'b', { qos: 2 });
    // One of them went to the raw member, which now drops the connection without PUBREC.
    const held = await first.client.take('publish');
    await go.waitFor(1);
    await first.client.destroy();
    // Once the broker has seen the close, a hand-over would be queued for the other member before a marker.
    await waitUntil(() => b.broker.sessions.get('q2m')?.online === false, 'the broker to see the close');
    const before = await arrivedBeforeMarker(pub, 'q2/marker', go);
    assert.deepEqual(payloads(before), [held.payload.toString() === 'a' ? 'b' : 'a']);
    const back = await RawClient.connect(b.port, 5, persistentMember);
    track(back.client);
    const again = await back.client.take('publish');
    assert.equal(again.payload.toString(), held.payload.toString());
    assert.equal(again.messageId, held.messageId);
    assert.equal(again.dup, true);
  });
});

test('shared subscription: QoS 1 messages queued for a member whose session expires go to another member', async () => {
  await withBroker(async (b, track) => {
    const member = (clientId: string, sessionExpiryInterval: number) => ({
      clientId,
      clean: false,
      properties: { sessionExpiryInterval },
    });
    for (const [id, expiry] of [['short', 1], ['long', 60]] as const) {
      const c = await RawClient.connect(b.port, 5, member(id, expiry));
      c.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/e/exp', qos: 1 }] });
      await c.client.take('suback');
      c.client.send({ cmd: 'disconnect' });
      await c.client.waitClosed();
    }
    // Both members offline: the messages are queued, one each.
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'exp-pub' }));
    await pub.publishAsync('exp', 'm1', { qos: 1 });
    await pub.publishAsync('exp', 'm2', { qos: 1 });
    const back = await RawClient.connect(b.port, 5, member('long', 60));
    track(back.client);
    const mine = await back.client.take('publish');
    back.client.send({ cmd: 'puback', messageId: mine.messageId });
    // The other member's session expires: its message is handed over.
    const handed = await back.client.take('publish', undefined, 5000);
    back.client.send({ cmd: 'puback', messageId: handed.messageId });
    assert.deepEqual([mine.payload.toString(), handed.payload.toString()].sort(), ['m1', 'm2']);
  });
});
