import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Packet } from 'mqtt-packet';
import { collect, connect, endClient, freePort } from '../helpers';
import { waitUntil } from '../guarantees/wait';
import { RawClient, arrivedBeforeMarker, payloads, withBroker } from '../mqtt-helpers';
import type { BrokerHooks } from '../../src/broker/options';

test('CONNECT with an unsupported protocol level gets CONNACK return code 1 (0x01) and a close', async () => {
  await withBroker(async (b) => {
    const raw = await RawClient.open(b.port, 4);
    // CONNECT, protocol name MQTT, level 6, clean session, keep alive 0, client id "x".
    raw.writeRaw(Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 6, 0x02, 0, 0, 0, 1, 0x78]));
    const connack = await raw.take('connack');
    assert.equal(connack.returnCode, 1);
    await raw.waitClosed();
  });
});

test('CONNECT with Receive Maximum 0 is a protocol error (CONNACK 0x82)', async () => {
  await withBroker(async (b) => {
    const raw = await RawClient.open(b.port, 5);
    // mqtt-packet will not generate receiveMaximum 0: CONNECT v5, clean, props [0x21 00 00], id "r".
    raw.writeRaw(Buffer.from([0x10, 17, 0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 0x02, 0, 0, 3, 0x21, 0, 0, 0, 1, 0x72]));
    const connack = await raw.take('connack');
    assert.equal(connack.reasonCode, 0x82);
    await raw.waitClosed();
  });
});

test('maxSessionExpiryInterval caps the MQTT 5 session expiry and CONNACK says so', async () => {
  await withBroker(
    async (b, track) => {
      const r = await RawClient.connect(b.port, 5, { clientId: 'cap', clean: false, properties: { sessionExpiryInterval: 3600 } });
      assert.equal(r.connack.properties?.sessionExpiryInterval, 1);
      r.client.send({ cmd: 'disconnect' });
      await r.client.waitClosed();
      await waitUntil(() => !b.broker.sessions.has('cap'), 'capped session expiry', 4000);
      const small = await RawClient.connect(b.port, 5, { clientId: 'cap2', clean: false, properties: { sessionExpiryInterval: 1 } });
      track(small.client);
      assert.equal(small.connack.properties?.sessionExpiryInterval, undefined);
    },
    { maxSessionExpiryInterval: 1 },
  );
});

test('mqtt3SessionExpiryInterval: a 3.1.1 persistent session expires after the configured time', async () => {
  await withBroker(
    async (b, track) => {
      const c1 = await RawClient.connect(b.port, 4, { clientId: 'v3exp', clean: false });
      c1.client.send({ cmd: 'disconnect' });
      await c1.client.waitClosed();
      assert.ok(b.broker.sessions.has('v3exp'));
      await waitUntil(() => !b.broker.sessions.has('v3exp'), '3.1.1 session expiry', 4000);
      const c2 = await RawClient.connect(b.port, 4, { clientId: 'v3exp', clean: false });
      track(c2.client);
      assert.equal(c2.connack.sessionPresent, false);
    },
    { mqtt3SessionExpiryInterval: 1 },
  );
});

test('authorization hooks: refused SUBSCRIBE gets 0x87 (3.1.1: 0x80), refused PUBLISH gets PUBACK 0x87 and is dropped', async () => {
  const hooks: BrokerHooks = {
    authenticate: () => true,
    authorizePublish: (_clientId, topic) => !topic.startsWith('secret/'),
    authorizeSubscribe: (_clientId, filter) => !filter.startsWith('secret/'),
  };
  await withBroker(
    async (b, track) => {
      const watcher = track(await connect(b.port, { protocolVersion: 5, clientId: 'w' }));
      const g = collect(watcher);
      await watcher.subscribeAsync('#', { qos: 1 });
      const { client } = await RawClient.connect(b.port, 5, { clientId: 'az5' });
      track(client);
      client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'secret/x', qos: 1 }, { topic: 'open/x', qos: 1 }] });
      assert.deepEqual((await client.take('suback')).granted, [0x87, 1]);
      client.send({ cmd: 'publish', topic: 'secret/x', payload: Buffer.from('no'), qos: 1, messageId: 2, dup: false, retain: false });
      const ack = await client.take('puback');
      assert.equal(ack.cmd === 'puback' && ack.reasonCode, 0x87);
      client.send({ cmd: 'publish', topic: 'secret/x', payload: Buffer.from('no'), qos: 2, messageId: 3, dup: false, retain: false });
      const rec = await client.take('pubrec');
      assert.equal(rec.cmd === 'pubrec' && rec.reasonCode, 0x87);

      const v4 = await RawClient.connect(b.port, 4, { clientId: 'az4' });
      track(v4.client);
      v4.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'secret/x', qos: 1 }] });
      assert.deepEqual((await v4.client.take('suback')).granted, [0x80]);
      v4.client.send({ cmd: 'publish', topic: 'secret/y', payload: Buffer.from('no'), qos: 1, messageId: 2, dup: false, retain: false });
      await v4.client.take('puback');
      // Had a refused PUBLISH been routed, it would be queued for the watcher before this marker.
      assert.deepEqual(await arrivedBeforeMarker(watcher, 'marker', g), []);
    },
    {},
    { hooks },
  );
});

test('broker shutdown sends MQTT 5 clients DISCONNECT 0x8B', async () => {
  await withBroker(async (b, track) => {
    const { client } = await RawClient.connect(b.port, 5, { clientId: 'sd' });
    track(client);
    await b.stop();
    const d = await client.take('disconnect');
    assert.equal(d.reasonCode, 0x8b);
    await client.waitClosed();
  });
});

test('on reconnect an unacknowledged delivery now too large for the client is dropped, not left blocking the window', async () => {
  await withBroker(async (b, track) => {
    const c1 = await RawClient.connect(b.port, 5, { clientId: 'big', clean: false, properties: { sessionExpiryInterval: 60 } });
    c1.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'big', qos: 1 }] });
    await c1.client.take('suback');
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'big-pub' }));
    await pub.publishAsync('big', Buffer.alloc(1000, 0x61), { qos: 1 });
    assert.equal((await c1.client.take('publish')).payload.length, 1000);
    await c1.client.destroy();
    await c1.client.waitClosed();
    const c2 = await RawClient.connect(b.port, 5, {
      clientId: 'big',
      clean: false,
      properties: { sessionExpiryInterval: 60, maximumPacketSize: 200, receiveMaximum: 1 },
    });
    track(c2.client);
    await pub.publishAsync('big', 'small', { qos: 1 });
    const p = await c2.client.take('publish');
    assert.equal(p.payload.toString(), 'small');
    c2.client.send({ cmd: 'puback', messageId: p.messageId });
    await waitUntil(() => b.broker.sessions.get('big')!.outbound.inflightCount === 0, 'empty in-flight window', 2000);
  });
});

test('on reconnect the broker re-sends no more unacknowledged PUBLISHes than the new Receive Maximum', async () => {
  await withBroker(async (b, track) => {
    const c1 = await RawClient.connect(b.port, 5, { clientId: 'rmr', clean: false, properties: { sessionExpiryInterval: 60, receiveMaximum: 5 } });
    c1.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rmr', qos: 1 }] });
    await c1.client.take('suback');
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'rmr-pub' }));
    for (let i = 0; i < 5; i++) await pub.publishAsync('rmr', String(i), { qos: 1 });
    await c1.client.takeMany('publish', 5);
    await c1.client.destroy();
    await c1.client.waitClosed();
    const c2 = await RawClient.connect(b.port, 5, { clientId: 'rmr', clean: false, properties: { sessionExpiryInterval: 60, receiveMaximum: 2 } });
    track(c2.client);
    const first = (await c2.client.takeMany('publish', 2));
    assert.deepEqual(first.map((p) => [p.payload.toString(), p.dup]), [['0', true], ['1', true]]);
    await c2.client.expectNothingBefore();
    // Each acknowledgement lets one more through, in order and still marked DUP.
    const rest: string[] = [];
    let last = first[1];
    c2.client.send({ cmd: 'puback', messageId: first[0].messageId });
    for (let i = 0; i < 3; i++) {
      const p = await c2.client.take('publish');
      rest.push(p.payload.toString());
      assert.equal(p.dup, true);
      c2.client.send({ cmd: 'puback', messageId: last.messageId });
      last = p;
    }
    assert.deepEqual(rest, ['2', '3', '4']);
  });
});

test('inbound Receive Maximum is counted per connection: QoS 2 ids carried over a reconnect do not extend it', async () => {
  await withBroker(
    async (b) => {
      const c1 = await RawClient.connect(b.port, 5, { clientId: 'carry', clean: false, properties: { sessionExpiryInterval: 60 } });
      c1.client.send({ cmd: 'publish', topic: 'carry', payload: Buffer.from('x'), qos: 2, messageId: 1, dup: false, retain: false });
      await c1.client.take('pubrec');
      await c1.client.destroy();
      await c1.client.waitClosed();
      const c2 = await RawClient.connect(b.port, 5, { clientId: 'carry', clean: false, properties: { sessionExpiryInterval: 60 } });
      c2.client.send({ cmd: 'pubrel', messageId: 1 });
      await c2.client.take('pubcomp');
      // Now 2 in flight is the limit; the third is one too many.
      for (const id of [2, 3]) c2.client.send({ cmd: 'publish', topic: 'carry', payload: Buffer.from('x'), qos: 2, messageId: id, dup: false, retain: false });
      await c2.client.takeMany('pubrec', 2);
      c2.client.send({ cmd: 'publish', topic: 'carry', payload: Buffer.from('x'), qos: 2, messageId: 4, dup: false, retain: false });
      const d = await c2.client.take('disconnect');
      assert.equal(d.reasonCode, 0x93);
      await c2.client.waitClosed();
    },
    { receiveMaximum: 2 },
  );
});

test('a will with a payload format indicator and a non-UTF-8 payload is refused (CONNACK 0x99)', async () => {
  await withBroker(async (b) => {
    const r = await RawClient.connect(b.port, 5, {
      clientId: 'wpf',
      will: { topic: 'w', payload: Buffer.from([0xc3, 0x28]), qos: 0, retain: false, properties: { payloadFormatIndicator: true } },
    });
    assert.equal(r.connack.reasonCode, 0x99);
    await r.client.waitClosed();
  });
});

test('WebSocket listener: MQTT 5 and MQTT 3.1 (subprotocol mqttv3.1) over WebSocket work end to end', async () => {
  const wsPort = await freePort();
  await withBroker(
    async (b, track) => {
      assert.ok(b.wsPort > 0);
      const ws = track(await connect(b.port, { protocol: 'ws', port: b.wsPort, path: '/mqtt', protocolVersion: 5, clientId: 'ws' }));
      const g = collect(ws);
      await ws.subscribeAsync('ws/#', { qos: 1 });
      const tcp = track(await connect(b.port, { protocolVersion: 4, clientId: 'tcp' }));
      await tcp.publishAsync('ws/a', 'over ws', { qos: 1 });
      const [m] = await g.waitFor(1);
      assert.equal(m.payload.toString(), 'over ws');
      await endClient(ws);
      // MQTT 3.1 clients ask for the WebSocket subprotocol "mqttv3.1".
      const ws31 = track(await connect(b.port, { protocol: 'ws', port: b.wsPort, path: '/mqtt', protocolVersion: 3, protocolId: 'MQIsdp', clientId: 'ws31' }));
      const g31 = collect(ws31);
      await ws31.subscribeAsync('ws/#', { qos: 1 });
      await tcp.publishAsync('ws/b', 'over ws 3.1', { qos: 1 });
      assert.equal((await g31.waitFor(1))[0].payload.toString(), 'over ws 3.1');
      await endClient(ws31);
    },
    { wsPort },
  );
});

test('acknowledgements for unknown packet ids: MQTT 5 PUBREC gets PUBREL 0x92, PUBREL gets PUBCOMP 0x92; PUBACK is ignored', async () => {
  await withBroker(async (b, track) => {
    const { client } = await RawClient.connect(b.port, 5, { clientId: 'unk' });
    track(client);
    client.send({ cmd: 'puback', messageId: 77 });
    client.send({ cmd: 'pubrec', messageId: 78 });
    const rel = await client.take('pubrel');
    assert.equal(rel.messageId, 78);
    assert.equal(rel.cmd === 'pubrel' && rel.reasonCode, 0x92);
    client.send({ cmd: 'pubrel', messageId: 79 });
    const comp = await client.take('pubcomp');
    assert.equal(comp.messageId, 79);
    assert.equal(comp.cmd === 'pubcomp' && comp.reasonCode, 0x92);
    assert.equal(client.closed, false);
    const v4 = await RawClient.connect(b.port, 4, { clientId: 'unk4' });
    track(v4.client);
    v4.client.send({ cmd: 'pubrel', messageId: 5 });
    assert.equal((await v4.client.take('pubcomp')).messageId, 5);
  });
});

test('packets only a server sends, and AUTH without an authentication method, are protocol errors (DISCONNECT 0x82)', async () => {
  await withBroker(async (b) => {
    const packets: Packet[] = [
      { cmd: 'connack', sessionPresent: false, reasonCode: 0 },
      { cmd: 'suback', messageId: 1, granted: [0] },
      { cmd: 'pingresp' },
      { cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'x' } },
    ];
    for (const [i, packet] of packets.entries()) {
      const { client } = await RawClient.connect(b.port, 5, { clientId: `srv${i}` });
      client.send(packet);
      const d = await client.take('disconnect');
      assert.equal(d.reasonCode, 0x82, packet.cmd);
      await client.waitClosed();
    }
  });
});

test('MQTT 5 PUBLISH with an empty topic and no topic alias is a protocol error (DISCONNECT 0x82)', async () => {
  await withBroker(async (b) => {
    const { client } = await RawClient.connect(b.port, 5, { clientId: 'empty' });
    client.send({ cmd: 'publish', topic: '', payload: Buffer.from('x'), qos: 0, dup: false, retain: false });
    const d = await client.take('disconnect');
    assert.equal(d.reasonCode, 0x82);
    await client.waitClosed();
  });
});

test('maxConnections: a CONNECT over the limit gets "server busy" (MQTT 5 0x89, 3.1.1 return code 3)', async () => {
  await withBroker(
    async (b, track) => {
      const first = await RawClient.connect(b.port, 5, { clientId: 'one' });
      track(first.client);
      assert.equal(first.connack.reasonCode, 0);
      const v5 = await RawClient.connect(b.port, 5, { clientId: 'two' });
      assert.equal(v5.connack.reasonCode, 0x89);
      await v5.client.waitClosed();
      const v4 = await RawClient.connect(b.port, 4, { clientId: 'three' });
      assert.equal(v4.connack.returnCode, 3);
      await v4.client.waitClosed();
      assert.equal(b.broker.sessions.has('two'), false);
    },
    { maxConnections: 1 },
  );
});

test('an authentication hook that fails is answered with "server unavailable" (MQTT 5 0x88, 3.1.1 return code 3)', async () => {
  const hooks: BrokerHooks = {
    authenticate: () => Promise.reject(new Error('directory down')),
    authorizePublish: () => true,
    authorizeSubscribe: () => true,
  };
  await withBroker(
    async (b) => {
      const v5 = await RawClient.connect(b.port, 5, { clientId: 'hf5' });
      assert.equal(v5.connack.reasonCode, 0x88);
      await v5.client.waitClosed();
      const v4 = await RawClient.connect(b.port, 4, { clientId: 'hf4' });
      assert.equal(v4.connack.returnCode, 3);
      await v4.client.waitClosed();
    },
    {},
    { hooks },
  );
});

test('packets sent right behind CONNECT (before CONNACK) are processed after it, in order', async () => {
  // Authentication waits until the test lets it go: what follows the CONNECT is held (or unread) until the CONNACK.
  let release = (): void => undefined;
  let asked = false;
  const gate = new Promise<boolean>((resolve) => (release = () => resolve(true)));
  const hooks: BrokerHooks = {
    authenticate: ({ clientId }) => (clientId === 'pipe' ? ((asked = true), gate) : true),
    authorizePublish: () => true,
    authorizeSubscribe: () => true,
  };
  await withBroker(
    async (b, track) => {
      const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'pipe-pub' }));
      await pub.publishAsync('pipe/r', 'retained', { qos: 1, retain: true });
      const raw = track(await RawClient.open(b.port, 5));
      raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'pipe', clean: true, keepalive: 0 });
      raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'pipe/#', qos: 2 }] });
      // Enough publishes, at QoS 0, 1 and 2 in turn, that handling them out of order would show.
      const n = 60;
      for (let i = 0; i < n; i++) {
        const qos = (i % 3) as 0 | 1 | 2;
        raw.send({ cmd: 'publish', topic: 'pipe/x', payload: Buffer.from(String(i)), qos, messageId: qos > 0 ? 100 + i : undefined, dup: false, retain: false });
      }
      await waitUntil(() => asked, 'the CONNECT to reach authentication');
      release();
      const delivered = payloads(await raw.takeMany('publish', n + 1));
      const cmds = raw.received.map((p) => p.cmd);
      assert.equal(cmds[0], 'connack', cmds.join(','));
      // The SUBSCRIBE was handled first: SUBACK before any acknowledgement and before the retained
      // message, and every publish reached the new subscription, in the order sent.
      const acks = raw.received.filter((p) => p.cmd === 'puback' || p.cmd === 'pubrec');
      assert.ok(cmds.indexOf('suback') < cmds.indexOf('puback'), cmds.join(','));
      assert.ok(cmds.indexOf('suback') < cmds.indexOf('pubrec'), cmds.join(','));
      const retainedAt = raw.received.findIndex((p) => p.cmd === 'publish' && p.payload.toString() === 'retained');
      assert.ok(cmds.indexOf('suback') < retainedAt, cmds.join(','));
      assert.deepEqual(
        delivered.filter((p) => p !== 'retained'),
        Array.from({ length: n }, (_, i) => String(i)),
      );
      // Acknowledgements in request order, each with its request's id and kind.
      const expected = Array.from({ length: n }, (_, i) => i).filter((i) => i % 3 > 0);
      assert.deepEqual(
        acks.map((p) => [p.cmd, p.messageId]),
        expected.map((i) => [i % 3 === 1 ? 'puback' : 'pubrec', 100 + i]),
      );
    },
    {},
    { hooks },
  );
});

test('a will on a topic the client may not publish to is refused at CONNECT (MQTT 5 0x87, 3.1.1 return code 5), not published', async () => {
  const hooks: BrokerHooks = {
    authenticate: () => true,
    authorizePublish: (_clientId, topic) => !topic.startsWith('secret/'),
    authorizeSubscribe: () => true,
  };
  await withBroker(
    async (b, track) => {
      const watcher = track(await connect(b.port, { protocolVersion: 5, clientId: 'ww' }));
      const g = collect(watcher);
      await watcher.subscribeAsync('secret/#', { qos: 1 });
      const will = { topic: 'secret/will', payload: Buffer.from('sneaky'), qos: 1 as const, retain: true };
      const v5 = await RawClient.connect(b.port, 5, { clientId: 'sw5', will });
      assert.equal(v5.connack.reasonCode, 0x87);
      await v5.client.waitClosed();
      const v4 = await RawClient.connect(b.port, 4, { clientId: 'sw4', will });
      assert.equal(v4.connack.returnCode, 5);
      await v4.client.waitClosed();
      const ok = await RawClient.connect(b.port, 5, { clientId: 'sw-ok', will: { ...will, topic: 'open/will' } });
      assert.equal(ok.connack.reasonCode, 0);
      await ok.client.destroy();
      await waitUntil(() => !b.broker.sessions.has('sw-ok'), 'the broker to see the close');
      // A will (published with the close) on a watched topic would be queued before this marker.
      await watcher.subscribeAsync('marker', { qos: 1 });
      assert.deepEqual(await arrivedBeforeMarker(watcher, 'marker', g), []);
      assert.equal(b.broker.retained.has('secret/will'), false);
    },
    {},
    { hooks },
  );
});

test('a PUBLISH from a client carrying a Subscription Identifier is a protocol error (DISCONNECT 0x82)', async () => {
  await withBroker(async (b) => {
    const { client } = await RawClient.connect(b.port, 5, { clientId: 'psid' });
    client.send({ cmd: 'publish', topic: 'x', payload: Buffer.from('x'), qos: 0, dup: false, retain: false, properties: { subscriptionIdentifier: 3 } });
    const d = await client.take('disconnect');
    assert.equal(d.reasonCode, 0x82);
    await client.waitClosed();
  });
});

test('CONNECT with Maximum Packet Size 0 is a protocol error (CONNACK 0x82)', async () => {
  await withBroker(async (b) => {
    const raw = await RawClient.open(b.port, 5);
    // mqtt-packet will not generate it: CONNECT v5, clean, props [0x27 00 00 00 00], id "r".
    raw.writeRaw(Buffer.from([0x10, 19, 0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 0x02, 0, 0, 5, 0x27, 0, 0, 0, 0, 0, 1, 0x72]));
    const connack = await raw.take('connack');
    assert.equal(connack.reasonCode, 0x82);
    await raw.waitClosed();
  });
});
