import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collect, connect, endClient, startTestBroker } from '../helpers';
import { RawClient, expectNothingMore, pingBroker, withBroker } from '../mqtt-helpers';

test('retained: set, replaced, served on subscribe (wildcards too) with RETAIN=1; cleared by an empty payload', async () => {
  await withBroker(async (b, track) => {
    const pub = track(await connect(b.port, { protocolVersion: 4, clientId: 'rt-pub' }));
    await pub.publishAsync('rt/a', 'first', { qos: 1, retain: true });
    await pub.publishAsync('rt/a', 'second', { qos: 1, retain: true });
    await pub.publishAsync('rt/b/c', 'deep', { qos: 0, retain: true });
    await pub.publishAsync('rt/plain', 'not retained', { qos: 1, retain: false });
    await pub.publishAsync('other/x', 'elsewhere', { qos: 1, retain: true });

    for (const [protocolVersion, filter, expected] of [
      [5, 'rt/a', [['rt/a', 'second']]],
      [4, 'rt/+', [['rt/a', 'second']]],
      [4, 'rt/#', [['rt/a', 'second'], ['rt/b/c', 'deep']]],
      [5, '+/b/+', [['rt/b/c', 'deep']]],
      [3, '#', [['rt/a', 'second'], ['rt/b/c', 'deep'], ['other/x', 'elsewhere']]],
    ] as const) {
      const { client } = await RawClient.connect(b.port, protocolVersion, { clientId: `rs-${filter}` });
      track(client);
      client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] });
      await client.take('suback');
      const got = (await client.takeMany('publish', expected.length));
      await client.expectNothingBefore();
      assert.deepEqual(
        got.map((p) => [p.topic, p.payload.toString()]).sort(),
        expected.map((e) => [...e]).sort(),
        `filter ${filter}`,
      );
      for (const p of got) assert.equal(p.retain, true, `RETAIN flag for ${p.topic} via ${filter}`);
      // Granted QoS 1 and published at QoS 1 → QoS 1; QoS 0 messages stay QoS 0.
      for (const p of got) assert.equal(p.qos, p.topic === 'rt/b/c' ? 0 : 1);
    }

    // Empty payload clears; the clearing message itself is still delivered to live subscribers.
    const live = track(await connect(b.port, { protocolVersion: 5, clientId: 'rt-live' }));
    const gl = collect(live);
    await live.subscribeAsync('rt/a', { qos: 1, rh: 2 });
    await pub.publishAsync('rt/a', '', { qos: 1, retain: true });
    const [cleared] = await gl.waitFor(1);
    assert.equal(cleared.payload.length, 0);
    assert.equal(b.broker.retained.has('rt/a'), false);
    const later = track(await connect(b.port, { protocolVersion: 5, clientId: 'rt-later' }));
    const g = collect(later);
    await later.subscribeAsync('rt/#', { qos: 1 });
    const ms = await g.waitFor(1);
    await expectNothingMore(later, g);
    assert.deepEqual(ms.map((m) => m.topic), ['rt/b/c']);
  });
});

test('retained delivery: QoS is the minimum of the message and subscription QoS; the subscription identifier is sent', async () => {
  await withBroker(async (b, track) => {
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'rq-pub' }));
    await pub.publishAsync('rq/2', 'two', { qos: 2, retain: true });
    const { client } = await RawClient.connect(b.port, 5, { clientId: 'rq' });
    track(client);
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rq/+', qos: 1 }], properties: { subscriptionIdentifier: 5 } });
    await client.take('suback');
    const p = await client.take('publish');
    assert.equal(p.qos, 1);
    assert.equal(p.retain, true);
    assert.deepEqual(p.properties?.subscriptionIdentifier, 5);
  });
});

test('a live retained message is delivered with RETAIN=0 to existing subscribers (3.1.1 and MQTT 5 without RAP)', async () => {
  await withBroker(async (b, track) => {
    const s4 = track(await connect(b.port, { protocolVersion: 4, clientId: 'lr4' }));
    const s5 = track(await connect(b.port, { protocolVersion: 5, clientId: 'lr5' }));
    const g4 = collect(s4);
    const g5 = collect(s5);
    await s4.subscribeAsync('lr', { qos: 1 });
    await s5.subscribeAsync('lr', { qos: 1 });
    const pub = track(await connect(b.port, { protocolVersion: 4, clientId: 'lr-pub' }));
    await pub.publishAsync('lr', 'x', { qos: 1, retain: true });
    assert.equal((await g4.waitFor(1))[0].packet.retain, false);
    assert.equal((await g5.waitFor(1))[0].packet.retain, false);
  });
});

test('retained messages are not sent for a shared subscription', async () => {
  await withBroker(async (b, track) => {
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'rsh-pub' }));
    await pub.publishAsync('rsh/a', 'kept', { qos: 1, retain: true });
    const { client } = await RawClient.connect(b.port, 5, { clientId: 'rsh' });
    track(client);
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/rsh/#', qos: 1 }] });
    await client.take('suback');
    await client.expectNothingBefore();
  });
});

test('retained messages survive a broker restart with the same data directory', async () => {
  let b = await startTestBroker();
  const dataDir = b.config.dataDir;
  try {
    const pub = await connect(b.port, { protocolVersion: 5, clientId: 'rr-pub' });
    await pub.publishAsync('rr/a', 'kept', { qos: 1, retain: true, properties: { contentType: 'text/plain' } });
    await pub.publishAsync('rr/b', 'gone', { qos: 1, retain: true });
    await pub.publishAsync('rr/b', '', { qos: 1, retain: true });
    await pub.publishAsync('rr/c', 'q0', { qos: 0, retain: true });
    // Handled by the PINGRESP: the QoS 0 retained change is then being committed, and stop waits for that.
    await pingBroker(pub);
    await endClient(pub);
    await b.stop();

    b = await startTestBroker({ dataDir });
    const sub = await connect(b.port, { protocolVersion: 5, clientId: 'rr-sub' });
    const g = collect(sub);
    await sub.subscribeAsync('rr/#', { qos: 1 });
    const ms = await g.waitFor(2);
    await expectNothingMore(sub, g);
    assert.deepEqual(ms.map((m) => [m.topic, m.payload.toString(), m.packet.retain]).sort(), [
      ['rr/a', 'kept', true],
      ['rr/c', 'q0', true],
    ]);
    assert.equal(ms.find((m) => m.topic === 'rr/a')?.packet.properties?.contentType, 'text/plain');
    await endClient(sub);
  } finally {
    await b.stop();
  }
});
