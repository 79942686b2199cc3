import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collect, connect, endClient } from '../helpers';
import { RawClient, once, withBroker } from '../mqtt-helpers';
import type { AuthRequest, BrokerHooks } from '../../src/broker/options';

test('CONNACK session present: 0 on a new session, 1 on reconnect to a persistent one, 0 after clean start', async () => {
  await withBroker(async (b) => {
    for (const protocolVersion of [3, 4, 5] as const) {
      const clientId = `sp-${protocolVersion}`;
      const persistent = protocolVersion === 5 ? { clean: false, properties: { sessionExpiryInterval: 60 } } : { clean: false };
      const first = await RawClient.connect(b.port, protocolVersion, { clientId, ...persistent });
      assert.equal(first.connack.sessionPresent, false, `v${protocolVersion} first connect`);
      assert.equal(first.connack.cmd, 'connack');
      first.client.send({ cmd: 'disconnect' });
      await first.client.waitClosed();

      const second = await RawClient.connect(b.port, protocolVersion, { clientId, ...persistent });
      assert.equal(second.connack.sessionPresent, true, `v${protocolVersion} reconnect`);
      second.client.send({ cmd: 'disconnect' });
      await second.client.waitClosed();

      const clean = await RawClient.connect(b.port, protocolVersion, { clientId, clean: true });
      assert.equal(clean.connack.sessionPresent, false, `v${protocolVersion} clean start`);
      clean.client.send({ cmd: 'disconnect' });
      await clean.client.waitClosed();

      // The clean connection discarded the session, and its own ended with it.
      const after = await RawClient.connect(b.port, protocolVersion, { clientId, ...persistent });
      assert.equal(after.connack.sessionPresent, false, `v${protocolVersion} after clean`);
      await after.client.destroy();
    }
  });
});

test('zero-length client id: MQTT 5 gets an assigned id, 3.1.1 clean=1 accepted, 3.1.1 clean=0 and 3.1 refused with 2', async () => {
  await withBroker(async (b, track) => {
    const v5 = await RawClient.connect(b.port, 5, { clientId: '' });
    track(v5.client);
    const c5 = v5.connack;
    assert.equal(c5.reasonCode, 0);
    const assigned = c5.properties?.assignedClientIdentifier;
    assert.equal(typeof assigned, 'string');
    assert.ok(assigned && assigned.length > 0);
    assert.ok(b.broker.sessions.has(assigned!));

    const v4clean = await RawClient.connect(b.port, 4, { clientId: '', clean: true });
    track(v4clean.client);
    assert.equal(v4clean.connack.returnCode, 0);
    assert.equal(v4clean.connack.properties, undefined);

    // mqtt-packet refuses to generate this CONNECT, so it is written by hand: MQTT 3.1.1, flags 0, keep alive 0, empty id.
    const v4persistent = track(await RawClient.open(b.port, 4));
    v4persistent.writeRaw(Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x00, 0, 0, 0, 0]));
    const refused = await v4persistent.take('connack');
    assert.equal(refused.returnCode, 2);
    assert.equal(refused.sessionPresent, false);
    await v4persistent.waitClosed();

    // MQTT 3.1 (MQIsdp), clean session, empty id: also written by hand.
    const v3 = track(await RawClient.open(b.port, 3));
    v3.writeRaw(Buffer.concat([Buffer.from([0x10, 14, 0, 6]), Buffer.from('MQIsdp'), Buffer.from([3, 0x02, 0, 0, 0, 0])]));
    assert.equal((await v3.take('connack')).returnCode, 2);
    await v3.waitClosed();
  });
});

test('the authentication hook refuses bad credentials: MQTT 5 0x86, 3.1.1 and 3.1 return code 4', async () => {
  const seen: AuthRequest[] = [];
  const hooks: BrokerHooks = {
    authenticate: async (req) => {
      seen.push(req);
      return req.username === 'alice' && req.password?.toString() === 'secret';
    },
    authorizePublish: () => true,
    authorizeSubscribe: () => true,
  };
  await withBroker(
    async (b, track) => {
      const bad5 = await RawClient.connect(b.port, 5, { clientId: 'a5', username: 'alice', password: Buffer.from('wrong') });
      assert.equal(bad5.connack.reasonCode, 0x86);
      await bad5.client.waitClosed();
      for (const protocolVersion of [3, 4] as const) {
        const bad = await RawClient.connect(b.port, protocolVersion, { clientId: `a${protocolVersion}`, username: 'mallory', password: Buffer.from('x') });
        assert.equal(bad.connack.returnCode, 4, `v${protocolVersion}`);
        await bad.client.waitClosed();
      }
      assert.equal(b.broker.sessions.has('a5'), false);

      // mqtt.js sees the refusal as an error; good credentials are accepted.
      await assert.rejects(connect(b.port, { protocolVersion: 5, clientId: 'm5', username: 'bob', password: 'x' }), /Bad User Name or Password/i);
      const good = track(await connect(b.port, { protocolVersion: 5, clientId: 'ok', username: 'alice', password: 'secret' }));
      assert.equal(good.connected, true);
      const last = seen[seen.length - 1];
      assert.equal(last.clientId, 'ok');
      assert.equal(last.username, 'alice');
      assert.match(last.remoteAddress, /^127\.0\.0\.1:\d+$/);
      await endClient(good);
    },
    {},
    { hooks },
  );
});

test('CONNECT with an authentication method is refused with 0x8C', async () => {
  await withBroker(async (b) => {
    const r = await RawClient.connect(b.port, 5, { clientId: 'am', properties: { authenticationMethod: 'SCRAM-SHA-1' } });
    assert.equal(r.connack.reasonCode, 0x8c);
    assert.equal(r.connack.sessionPresent, false);
    await r.client.waitClosed();
    assert.equal(b.broker.sessions.has('am'), false);
  });
});

test('a first packet other than CONNECT closes the connection without a reply', async () => {
  await withBroker(async (b, track) => {
    for (const protocolVersion of [4, 5] as const) {
      const raw = track(await RawClient.open(b.port, protocolVersion));
      raw.send({ cmd: 'pingreq' });
      await raw.waitClosed();
      assert.deepEqual(raw.received, []);
    }
    const raw = track(await RawClient.open(b.port, 5));
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 0 }] });
    await raw.waitClosed();
    assert.deepEqual(raw.received, []);
  });
});

test('a second CONNECT on a connection is a protocol error (MQTT 5: DISCONNECT 0x82)', async () => {
  await withBroker(async (b) => {
    const v5 = await RawClient.connect(b.port, 5, { clientId: 'twice5' });
    v5.client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'twice5', clean: true, keepalive: 0 });
    const d = await v5.client.take('disconnect');
    assert.equal(d.reasonCode, 0x82);
    await v5.client.waitClosed();
    assert.equal(v5.client.all('connack').length, 1, 'no CONNACK for the second CONNECT');

    const v4 = await RawClient.connect(b.port, 4, { clientId: 'twice4' });
    v4.client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'twice4', clean: true, keepalive: 0 });
    await v4.client.waitClosed();
    assert.deepEqual(v4.client.untaken(), []);
  });
});

test('keep alive is enforced at 1.5x: a silent client is closed (MQTT 5: DISCONNECT 0x8D), a pinging one is not', async () => {
  await withBroker(async (b, track) => {
    const silent5 = await RawClient.connect(b.port, 5, { clientId: 'ka5', keepalive: 1 });
    const silent4 = await RawClient.connect(b.port, 4, { clientId: 'ka4', keepalive: 1 });
    const pinging = await RawClient.connect(b.port, 5, { clientId: 'kap', keepalive: 1 });
    track(pinging.client);
    const pinger = setInterval(() => pinging.client.send({ cmd: 'pingreq' }), 400);
    try {
      const d = await silent5.client.take('disconnect', undefined, 6000);
      assert.equal(d.reasonCode, 0x8d);
      await silent5.client.waitClosed();
      await silent4.client.waitClosed(6000);
      assert.deepEqual(silent4.client.untaken(), []);
      assert.equal(pinging.client.closed, false);
      const pong = await pinging.client.take('pingresp');
      assert.equal(pong.cmd, 'pingresp');
    } finally {
      clearInterval(pinger);
    }
  });
});

test('a connection that sends no CONNECT within connectTimeoutMs is closed', async () => {
  await withBroker(
    async (b) => {
      const raw = await RawClient.open(b.port, 5);
      await raw.waitClosed(4000);
      assert.deepEqual(raw.received, []);
    },
    { connectTimeoutMs: 200 },
  );
});

test('maxKeepAlive: MQTT 5 CONNACK carries Server Keep Alive when the request is larger or 0, and it is enforced', async () => {
  await withBroker(
    async (b, track) => {
      const r1 = await RawClient.connect(b.port, 5, { clientId: 'sk2', keepalive: 600 });
      track(r1.client);
      assert.equal(r1.connack.properties?.serverKeepAlive, 2);
      const r0 = await RawClient.connect(b.port, 5, { clientId: 'sk3', keepalive: 0 });
      track(r0.client);
      assert.equal(r0.connack.properties?.serverKeepAlive, 2);
      const small = await RawClient.connect(b.port, 5, { clientId: 'sk4', keepalive: 1 });
      track(small.client);
      assert.equal(small.connack.properties?.serverKeepAlive, undefined);
      // The client asked for no keep alive, but the server's value applies.
      const d = await r0.client.take('disconnect', undefined, 6000);
      assert.equal(d.reasonCode, 0x8d);
      await r0.client.waitClosed();
    },
    { maxKeepAlive: 2 },
  );
});

test('MQTT 5 CONNACK announces the broker limits', async () => {
  await withBroker(
    async (b, track) => {
      const r = await RawClient.connect(b.port, 5, { clientId: 'lim' });
      track(r.client);
      const c = r.connack;
      assert.equal(c.reasonCode, 0);
      assert.equal(c.properties?.receiveMaximum, 7);
      assert.equal(c.properties?.maximumPacketSize, 4096);
      assert.equal(c.properties?.topicAliasMaximum, 5);
      assert.equal(c.properties?.sharedSubscriptionAvailable, true);
      assert.equal(c.properties?.subscriptionIdentifiersAvailable, true);
    },
    { receiveMaximum: 7, maxPacketSize: 4096, topicAliasMaximum: 5 },
  );
});

test('PINGREQ gets PINGRESP; DISCONNECT closes the connection', async () => {
  await withBroker(async (b) => {
    for (const protocolVersion of [3, 4, 5] as const) {
      const { client } = await RawClient.connect(b.port, protocolVersion, { clientId: `p${protocolVersion}` });
      client.send({ cmd: 'pingreq' });
      client.send({ cmd: 'pingreq' });
      await client.takeMany('pingresp', 2);
      client.send({ cmd: 'disconnect' });
      await client.waitClosed();
      assert.equal(b.broker.sessions.has(`p${protocolVersion}`), false);
    }
  });
});

test('session takeover: the first connection is closed (MQTT 5: DISCONNECT 0x8E, 3.1.1: closed)', async () => {
  await withBroker(async (b, track) => {
    const first5 = await RawClient.connect(b.port, 5, { clientId: 'same5' });
    const second5 = await RawClient.connect(b.port, 5, { clientId: 'same5' });
    track(second5.client);
    const d = await first5.client.take('disconnect');
    assert.equal(d.reasonCode, 0x8e);
    await first5.client.waitClosed();
    assert.equal(second5.connack.reasonCode, 0);

    const m1 = track(await connect(b.port, { protocolVersion: 4, clientId: 'same4' }));
    const closed = once(m1, 'close');
    const m2 = track(await connect(b.port, { protocolVersion: 4, clientId: 'same4' }));
    await closed;
    assert.equal(m2.connected, true);
    // The new connection works.
    const got = collect(m2);
    await m2.subscribeAsync('t/take', { qos: 1 });
    await m2.publishAsync('t/take', 'x', { qos: 1 });
    await got.waitFor(1);
    await endClient(m2);
  });
});

test('session takeover keeps the persistent session: queued messages reach the new connection', async () => {
  await withBroker(async (b, track) => {
    // First connection subscribes but never acknowledges; the second takes over.
    const first = await RawClient.connect(b.port, 5, { clientId: 'tk', clean: false, properties: { sessionExpiryInterval: 300, receiveMaximum: 1 } });
    first.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'tk/#', qos: 1 }] });
    await first.client.take('suback');
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'tk-pub' }));
    for (const n of [1, 2, 3]) await pub.publishAsync('tk/a', `m${n}`, { qos: 1 });
    const p1 = await first.client.take('publish');
    assert.equal(p1.cmd === 'publish' && p1.payload.toString(), 'm1');

    const second = await RawClient.connect(b.port, 5, { clientId: 'tk', clean: false, properties: { sessionExpiryInterval: 300 } });
    track(second.client);
    assert.equal(second.connack.sessionPresent, true);
    const d = await first.client.take('disconnect');
    assert.equal(d.reasonCode, 0x8e);
    const pubs = await second.client.takeMany('publish', 3);
    const seen = pubs.map((p) => (p.cmd === 'publish' ? [p.payload.toString(), p.dup] : []));
    assert.deepEqual(seen, [
      ['m1', true],
      ['m2', false],
      ['m3', false],
    ]);
    await first.client.waitClosed();
  });
});

test('MQTT 3.1 (protocol version 3, MQIsdp) connects, subscribes and publishes', async () => {
  await withBroker(async (b, track) => {
    const sub = track(await connect(b.port, { protocolVersion: 3, protocolId: 'MQIsdp', clientId: 'v31-sub' }));
    const got = collect(sub);
    const granted = await sub.subscribeAsync('v31/+', { qos: 1 });
    assert.equal(granted[0].qos, 1);
    const pub = track(await connect(b.port, { protocolVersion: 3, protocolId: 'MQIsdp', clientId: 'v31-pub' }));
    await pub.publishAsync('v31/a', 'q0', { qos: 0 });
    await pub.publishAsync('v31/a', 'q1', { qos: 1 });
    await pub.publishAsync('v31/a', 'q2', { qos: 2 });
    const ms = await got.waitFor(3);
    assert.deepEqual(
      ms.map((m) => [m.payload.toString(), m.packet.qos]),
      [
        ['q0', 0],
        ['q1', 1],
        ['q2', 1],
      ],
    );
    await endClient(pub);
    await endClient(sub);
  });
});
