import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ISubackPacket } from 'mqtt-packet';
import { collect, connect, endClient } from '../helpers';
import { RawClient, arrivedBeforeMarker, expectNothingMore, pingBroker, withBroker } from '../mqtt-helpers';

async function subscribeRaw(c: RawClient, topic: string, qos: 0 | 1 | 2, messageId = 1): Promise<ISubackPacket> {
  c.send({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] });
  return c.take('suback');
}

for (const protocolVersion of [4, 5] as const) {
  test(`v${protocolVersion}: QoS 0/1/2 inbound acknowledgement flows (PUBACK, PUBREC/PUBREL/PUBCOMP) with exact packet ids`, async () => {
    await withBroker(async (b, track) => {
      const sub = track(await connect(b.port, { protocolVersion, clientId: 'sub' }));
      const got = collect(sub);
      await sub.subscribeAsync('in/#', { qos: 2 });
      const { client } = await RawClient.connect(b.port, protocolVersion, { clientId: 'pub' });
      track(client);

      client.send({ cmd: 'publish', topic: 'in/0', payload: Buffer.from('zero'), qos: 0, dup: false, retain: false });
      client.send({ cmd: 'publish', topic: 'in/1', payload: Buffer.from('one'), qos: 1, messageId: 17, dup: false, retain: false });
      const puback = await client.take('puback');
      assert.equal(puback.messageId, 17);
      if (protocolVersion === 5) assert.ok(puback.reasonCode === undefined || puback.reasonCode === 0);

      client.send({ cmd: 'publish', topic: 'in/2', payload: Buffer.from('two'), qos: 2, messageId: 300, dup: false, retain: false });
      const pubrec = await client.take('pubrec');
      assert.equal(pubrec.messageId, 300);
      // A re-sent QoS 2 PUBLISH with the same id is answered again and not forwarded a second time.
      client.send({ cmd: 'publish', topic: 'in/2', payload: Buffer.from('two'), qos: 2, messageId: 300, dup: true, retain: false });
      assert.equal((await client.take('pubrec')).messageId, 300);
      client.send({ cmd: 'pubrel', messageId: 300 });
      const pubcomp = await client.take('pubcomp');
      assert.equal(pubcomp.messageId, 300);
      if (protocolVersion === 5) assert.ok(pubcomp.reasonCode === undefined || pubcomp.reasonCode === 0);

      // After PUBCOMP the id is free: the same id is a new message.
      client.send({ cmd: 'publish', topic: 'in/2', payload: Buffer.from('again'), qos: 2, messageId: 300, dup: false, retain: false });
      assert.equal((await client.take('pubrec')).messageId, 300);
      client.send({ cmd: 'pubrel', messageId: 300 });
      await client.take('pubcomp');

      const ms = await got.waitFor(4);
      // The last PUBCOMP means every PUBLISH above was handled: a second 'two' would be here by the PINGRESP.
      await expectNothingMore(sub, got);
      assert.deepEqual(
        got.messages.map((m) => [m.topic, m.payload.toString(), m.packet.qos]),
        [
          ['in/0', 'zero', 0],
          ['in/1', 'one', 1],
          ['in/2', 'two', 2],
          ['in/2', 'again', 2],
        ],
      );
      assert.equal(ms.length, 4);
    });
  });

  test(`v${protocolVersion}: outbound QoS 1 and 2: PUBLISH with packet id, PUBACK completes, PUBREC gets PUBREL, PUBCOMP completes`, async () => {
    await withBroker(async (b, track) => {
      const { client } = await RawClient.connect(b.port, protocolVersion, { clientId: 'rx' });
      track(client);
      const suback = await subscribeRaw(client, 'out/+', 2, 9);
      assert.equal(suback.messageId, 9);
      assert.deepEqual(suback.granted, [2]);
      const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'tx' }));

      await pub.publishAsync('out/a', 'q0', { qos: 0 });
      const p0 = await client.take('publish');
      assert.equal(p0.qos, 0);
      assert.equal(p0.messageId, undefined);
      assert.equal(p0.payload.toString(), 'q0');

      await pub.publishAsync('out/a', 'q1', { qos: 1 });
      const p1 = await client.take('publish');
      assert.equal(p1.qos, 1);
      assert.equal(p1.dup, false);
      assert.equal(typeof p1.messageId, 'number');
      const session = b.broker.sessions.get('rx')!;
      assert.equal(session.outbound.inflightCount, 1);
      client.send({ cmd: 'puback', messageId: p1.messageId });

      await pub.publishAsync('out/b', 'q2', { qos: 2 });
      const p2 = await client.take('publish');
      assert.equal(p2.qos, 2);
      assert.notEqual(p2.messageId, p1.messageId);
      client.send({ cmd: 'pubrec', messageId: p2.messageId });
      const rel = await client.take('pubrel');
      assert.equal(rel.messageId, p2.messageId);
      assert.equal(session.outbound.inflightCount, 1);
      client.send({ cmd: 'pubcomp', messageId: p2.messageId });
      client.send({ cmd: 'pingreq' });
      await client.take('pingresp');
      assert.equal(session.outbound.inflightCount, 0);
      // Nothing is re-sent afterwards.
      await client.expectNothingBefore();
    });
  });
}

test('QoS is the minimum of the publish QoS and the granted QoS', async () => {
  await withBroker(async (b, track) => {
    const s0 = track(await connect(b.port, { protocolVersion: 5, clientId: 's0' }));
    const s1 = track(await connect(b.port, { protocolVersion: 4, clientId: 's1' }));
    const g0 = collect(s0);
    const g1 = collect(s1);
    await s0.subscribeAsync('q/x', { qos: 0 });
    await s1.subscribeAsync('q/x', { qos: 1 });
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'p' }));
    await pub.publishAsync('q/x', 'a', { qos: 2 });
    await pub.publishAsync('q/x', 'b', { qos: 0 });
    assert.deepEqual((await g0.waitFor(2)).map((m) => m.packet.qos), [0, 0]);
    assert.deepEqual((await g1.waitFor(2)).map((m) => m.packet.qos), [1, 0]);
  });
});

test('wildcards: + matches one level, # matches the rest including the parent, exact filters match exactly', async () => {
  await withBroker(async (b, track) => {
    const filters = ['a/+/c', 'a/#', '#', '+', 'a/b', '+/+', 'a/+'];
    const clients = await Promise.all(filters.map((_, i) => connect(b.port, { protocolVersion: 5, clientId: `w${i}` })));
    clients.forEach((c) => track(c));
    const got = clients.map((c) => collect(c));
    await Promise.all(clients.map((c, i) => c.subscribeAsync(filters[i], { qos: 1 })));
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'wp' }));
    const topics = ['a', 'a/b', 'a/b/c', 'a/x/c', 'b/c', 'a/b/c/d', '/a'];
    for (const t of topics) await pub.publishAsync(t, t, { qos: 1 });
    await pub.publishAsync('end', 'end', { qos: 1 }); // matched by '#' and '+', marks the end
    const expected: Record<string, string[]> = {
      'a/+/c': ['a/b/c', 'a/x/c'],
      'a/#': ['a', 'a/b', 'a/b/c', 'a/x/c', 'a/b/c/d'],
      '#': [...topics, 'end'],
      '+': ['a', 'end'],
      'a/b': ['a/b'],
      '+/+': ['a/b', 'b/c', '/a'],
      'a/+': ['a/b'],
    };
    // Every publish was acknowledged, so routed: what each client gets is there by its PINGRESP.
    for (const c of clients) await pingBroker(c);
    filters.forEach((f, i) => {
      assert.deepEqual(
        got[i].messages.map((m) => m.topic),
        expected[f],
        `filter ${f}`,
      );
    });
  });
});

test('$-topics are not matched by filters starting with a wildcard, but are by explicit filters', async () => {
  await withBroker(async (b, track) => {
    const hash = track(await connect(b.port, { protocolVersion: 5, clientId: 'h' }));
    const plus = track(await connect(b.port, { protocolVersion: 4, clientId: 'p' }));
    const sys = track(await connect(b.port, { protocolVersion: 5, clientId: 's' }));
    const gh = collect(hash);
    const gp = collect(plus);
    const gs = collect(sys);
    await hash.subscribeAsync('#', { qos: 1 });
    await plus.subscribeAsync('+/x', { qos: 1 });
    await sys.subscribeAsync(['$SYS/#', '$SYS/+'], { qos: 1 });
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'pub' }));
    await pub.publishAsync('$SYS/x', 'sys', { qos: 1 });
    await pub.publishAsync('$other/x', 'other', { qos: 1 });
    await pub.publishAsync('n/x', 'normal', { qos: 1 });
    for (const c of [hash, plus, sys]) await pingBroker(c);
    assert.deepEqual(gh.messages.map((m) => m.topic), ['n/x']);
    assert.deepEqual(gp.messages.map((m) => m.topic), ['n/x']);
    // Two overlapping subscriptions, one delivery.
    assert.deepEqual(gs.messages.map((m) => m.topic), ['$SYS/x']);
  });
});

test('overlapping subscriptions: one delivery per client at the highest QoS, MQTT 5 carries every subscription identifier', async () => {
  await withBroker(async (b, track) => {
    const { client } = await RawClient.connect(b.port, 5, { clientId: 'ov' });
    track(client);
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'o/+', qos: 0 }], properties: { subscriptionIdentifier: 11 } });
    client.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'o/#', qos: 2 }], properties: { subscriptionIdentifier: 22 } });
    client.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'o/t', qos: 1 }] });
    await client.takeMany('suback', 3);
    const v4 = track(await connect(b.port, { protocolVersion: 4, clientId: 'ov4' }));
    const g4 = collect(v4);
    await v4.subscribeAsync({ 'o/+': { qos: 0 }, 'o/#': { qos: 1 } });

    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'op' }));
    await pub.publishAsync('o/t', 'x', { qos: 2 });
    const p = await client.take('publish');
    assert.equal(p.qos, 2);
    assert.deepEqual([...(p.properties?.subscriptionIdentifier as number[])].sort((a, b) => a - b), [11, 22]);
    client.send({ cmd: 'pubrec', messageId: p.messageId });
    await client.take('pubrel');
    client.send({ cmd: 'pubcomp', messageId: p.messageId });
    await client.expectNothingBefore();

    const [m4] = await g4.waitFor(1);
    assert.equal(m4.packet.qos, 1);
    await expectNothingMore(v4, g4);

    // A message matching only the identifier-less subscription carries none.
    await pub.publishAsync('o/t/deeper', 'y', { qos: 1 });
    const q = await client.take('publish');
    assert.equal(q.topic, 'o/t/deeper');
    assert.deepEqual(q.properties?.subscriptionIdentifier, 22);
  });
});

test('invalid topic filters are refused per filter in SUBACK: MQTT 5 0x8F, 3.1.1 0x80', async () => {
  await withBroker(async (b, track) => {
    const bad = ['a/#/b', 'a+', 'a/b#', '', '$share/g', '$share/g+/x'];
    for (const protocolVersion of [4, 5] as const) {
      const { client } = await RawClient.connect(b.port, protocolVersion, { clientId: `f${protocolVersion}` });
      track(client);
      const good = protocolVersion === 5 ? ['ok/+', '#', '$share/g/x/#'] : ['ok/+', '#'];
      const subs = [...good, ...bad].map((topic) => ({ topic, qos: 1 as const }));
      client.send({ cmd: 'subscribe', messageId: 5, subscriptions: subs });
      const suback = await client.take('suback');
      const failure = protocolVersion === 5 ? 0x8f : 0x80;
      assert.deepEqual(suback.granted, [...good.map(() => 1), ...bad.map(() => failure)]);
      assert.equal(client.closed, false);
    }
  });
});

test('PUBLISH with a wildcard in its topic name closes the connection (MQTT 5: DISCONNECT 0x90)', async () => {
  await withBroker(async (b, track) => {
    const sub = track(await connect(b.port, { protocolVersion: 5, clientId: 'watch' }));
    const got = collect(sub);
    await sub.subscribeAsync('#', { qos: 0 });
    for (const topic of ['a/+', 'a/#']) {
      const { client } = await RawClient.connect(b.port, 5, { clientId: 'bad5' });
      client.send({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId: 1, dup: false, retain: false });
      const d = await client.take('disconnect');
      assert.equal(d.reasonCode, 0x90);
      await client.waitClosed();
      assert.equal(client.received.filter((p) => p.cmd === 'puback').length, 0);
    }
    const { client } = await RawClient.connect(b.port, 4, { clientId: 'bad4' });
    client.send({ cmd: 'publish', topic: 'x/+/y', payload: Buffer.from('x'), qos: 0, dup: false, retain: false });
    await client.waitClosed();
    assert.deepEqual(client.untaken(), []);
    // Had a refused PUBLISH been routed, it would be queued for the watcher before this marker.
    assert.deepEqual(await arrivedBeforeMarker(sub, 'marker', got), []);
  });
});

test('UNSUBSCRIBE stops deliveries; MQTT 5 UNSUBACK says which subscriptions existed', async () => {
  await withBroker(async (b, track) => {
    const { client } = await RawClient.connect(b.port, 5, { clientId: 'un' });
    track(client);
    await subscribeRaw(client, 'u/1', 0);
    client.send({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['u/1', 'u/never'] });
    const unsuback = await client.take('unsuback');
    assert.equal(unsuback.messageId, 4);
    assert.deepEqual(unsuback.granted, [0x00, 0x11]);
    const m = track(await connect(b.port, { protocolVersion: 4, clientId: 'un4' }));
    const g = collect(m);
    await m.subscribeAsync('u/1');
    await m.unsubscribeAsync('u/1');
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'unp' }));
    await pub.publishAsync('u/1', 'x', { qos: 1 });
    await client.expectNothingBefore();
    await expectNothingMore(m, g);
    assert.equal(g.messages.length, 0);
    await endClient(m);
  });
});

test('subscribing again replaces the subscription (new QoS), without a second delivery', async () => {
  await withBroker(async (b, track) => {
    const s = track(await connect(b.port, { protocolVersion: 5, clientId: 're' }));
    const g = collect(s);
    await s.subscribeAsync('r/x', { qos: 0 });
    await s.subscribeAsync('r/x', { qos: 1 });
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'rp' }));
    await pub.publishAsync('r/x', 'x', { qos: 1 });
    const [m] = await g.waitFor(1);
    assert.equal(m.packet.qos, 1);
    await expectNothingMore(s, g);
    assert.equal(g.messages.length, 1);
  });
});

test('messages from one publisher arrive in order at QoS 0, 1 and 2 (PUBLISH order on the wire)', async () => {
  await withBroker(async (b, track) => {
    // A raw subscriber: mqtt.js hands QoS 2 messages to the application only at PUBREL.
    const { client } = await RawClient.connect(b.port, 5, { clientId: 'ord' });
    track(client);
    await subscribeRaw(client, 'ord', 2);
    const order: number[] = [];
    const n = 60;
    const pub = track(await connect(b.port, { protocolVersion: 4, clientId: 'ordp' }));
    const published = Promise.all(Array.from({ length: n }, (_, i) => pub.publishAsync('ord', String(i), { qos: (i % 3) as 0 | 1 | 2 })));
    while (order.length < n) {
      const p = await client.take('publish');
      order.push(Number(p.payload.toString()));
      if (p.qos === 1) client.send({ cmd: 'puback', messageId: p.messageId });
      if (p.qos === 2) client.send({ cmd: 'pubrec', messageId: p.messageId });
    }
    await published;
    assert.deepEqual(
      order,
      Array.from({ length: n }, (_, i) => i),
    );
  });
});

test('PUBLISH whose topic name is not well-formed UTF-8 or holds U+0000 is malformed (MQTT 5: DISCONNECT 0x81)', async () => {
  await withBroker(async (b, track) => {
    const sub = track(await connect(b.port, { protocolVersion: 5, clientId: 'watch-utf8' }));
    const got = collect(sub);
    await sub.subscribeAsync('#', { qos: 0 });
    // PUBLISH QoS 0, MQTT 5, no properties: topic length, topic bytes, property length 0, payload "x".
    const publishWithTopicBytes = (topic: Buffer) =>
      Buffer.concat([Buffer.from([0x30, 2 + topic.length + 1 + 1, 0, topic.length]), topic, Buffer.from([0, 0x78])]);
    for (const topic of [Buffer.from([0x61, 0xff, 0x62]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0x61, 0x00])]) {
      const { client } = await RawClient.connect(b.port, 5, { clientId: 'bad-utf8' });
      client.writeRaw(publishWithTopicBytes(topic));
      const d = await client.take('disconnect');
      assert.equal(d.reasonCode, 0x81, `topic bytes ${topic.toString('hex')}`);
      await client.waitClosed();
    }
    assert.deepEqual(await arrivedBeforeMarker(sub, 'marker', got), []);
  });
});
