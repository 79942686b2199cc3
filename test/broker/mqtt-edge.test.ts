import net from 'node:net';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IConnackPacket, IDisconnectPacket, IPublishPacket, ISubackPacket, Packet } from 'mqtt-packet';
import { collect, connect, endClient, sleep } from '../helpers';
import { RawClient, until, withBroker } from '../mqtt-helpers';
import type { BrokerHooks } from '../../src/broker/options';

function asPublish(p: Packet): IPublishPacket {
  assert.equal(p.cmd, 'publish');
  return p as IPublishPacket;
}

test('CONNECT with an unsupported protocol level gets CONNACK return code 1 (0x01) and a close', async () => {
  await withBroker(async (b) => {
    const raw = await RawClient.open(b.port, 4);
    // CONNECT, protocol name MQTT, level 6, clean session, keep alive 0, client id "x".
    raw.write(Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 6, 0x02, 0, 0, 0, 1, 0x78]));
    const connack = (await raw.next('connack')) as IConnackPacket;
    assert.equal(connack.returnCode, 1);
    await raw.waitClosed();
  });
});

test('CONNECT with Receive Maximum 0 is a protocol error (CONNACK 0x82)', async () => {
  await withBroker(async (b) => {
    const raw = await RawClient.open(b.port, 5);
    // mqtt-packet will not generate receiveMaximum 0: CONNECT v5, clean, props [0x21 00 00], id "r".
    raw.write(Buffer.from([0x10, 17, 0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 0x02, 0, 0, 3, 0x21, 0, 0, 0, 1, 0x72]));
    const connack = (await raw.next('connack')) as IConnackPacket;
    assert.equal(connack.reasonCode, 0x82);
    await raw.waitClosed();
  });
});

test('maxSessionExpiryInterval caps the MQTT 5 session expiry and CONNACK says so', async () => {
  await withBroker(
    async (b, track) => {
      const r = await RawClient.connect(b.port, { clientId: 'cap', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 } });
      assert.equal((r.connack as IConnackPacket).properties?.sessionExpiryInterval, 1);
      r.client.send({ cmd: 'disconnect' });
      await r.client.waitClosed();
      await until(() => !b.broker.sessions.has('cap'), 4000, 'capped session expiry');
      const small = await RawClient.connect(b.port, { clientId: 'cap2', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 1 } });
      track(small.client);
      assert.equal((small.connack as IConnackPacket).properties?.sessionExpiryInterval, undefined);
    },
    { maxSessionExpiryInterval: 1 },
  );
});

test('mqtt3SessionExpiryInterval: a 3.1.1 persistent session expires after the configured time', async () => {
  await withBroker(
    async (b, track) => {
      const c1 = await RawClient.connect(b.port, { clientId: 'v3exp', protocolVersion: 4, clean: false });
      c1.client.send({ cmd: 'disconnect' });
      await c1.client.waitClosed();
      assert.ok(b.broker.sessions.has('v3exp'));
      await until(() => !b.broker.sessions.has('v3exp'), 4000, '3.1.1 session expiry');
      const c2 = await RawClient.connect(b.port, { clientId: 'v3exp', protocolVersion: 4, clean: false });
      track(c2.client);
      assert.equal((c2.connack as IConnackPacket).sessionPresent, false);
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
      const { client } = await RawClient.connect(b.port, { clientId: 'az5', protocolVersion: 5 });
      track(client);
      client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'secret/x', qos: 1 }, { topic: 'open/x', qos: 1 }] });
      assert.deepEqual(((await client.next('suback')) as ISubackPacket).granted, [0x87, 1]);
      client.send({ cmd: 'publish', topic: 'secret/x', payload: Buffer.from('no'), qos: 1, messageId: 2, dup: false, retain: false });
      const ack = await client.next('puback');
      assert.equal(ack.cmd === 'puback' && ack.reasonCode, 0x87);
      client.send({ cmd: 'publish', topic: 'secret/x', payload: Buffer.from('no'), qos: 2, messageId: 3, dup: false, retain: false });
      const rec = await client.next('pubrec');
      assert.equal(rec.cmd === 'pubrec' && rec.reasonCode, 0x87);

      const v4 = await RawClient.connect(b.port, { clientId: 'az4', protocolVersion: 4 });
      track(v4.client);
      v4.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'secret/x', qos: 1 }] });
      assert.deepEqual(((await v4.client.next('suback')) as ISubackPacket).granted, [0x80]);
      v4.client.send({ cmd: 'publish', topic: 'secret/y', payload: Buffer.from('no'), qos: 1, messageId: 2, dup: false, retain: false });
      await v4.client.next('puback');
      await sleep(100);
      assert.equal(g.messages.length, 0);
    },
    {},
    { hooks },
  );
});

test('broker shutdown sends MQTT 5 clients DISCONNECT 0x8B', async () => {
  await withBroker(async (b, track) => {
    const { client } = await RawClient.connect(b.port, { clientId: 'sd', protocolVersion: 5 });
    track(client);
    await b.stop();
    const d = (await client.next('disconnect')) as IDisconnectPacket;
    assert.equal(d.reasonCode, 0x8b);
    await client.waitClosed();
  });
});

test('on reconnect an unacknowledged delivery now too large for the client is dropped, not left blocking the window', async () => {
  await withBroker(async (b, track) => {
    const c1 = await RawClient.connect(b.port, { clientId: 'big', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } });
    c1.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'big', qos: 1 }] });
    await c1.client.next('suback');
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'big-pub' }));
    await pub.publishAsync('big', Buffer.alloc(1000, 0x61), { qos: 1 });
    assert.equal(asPublish(await c1.client.next('publish')).payload.length, 1000);
    c1.client.destroy();
    await c1.client.waitClosed();
    const c2 = await RawClient.connect(b.port, {
      clientId: 'big',
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 60, maximumPacketSize: 200, receiveMaximum: 1 },
    });
    track(c2.client);
    await pub.publishAsync('big', 'small', { qos: 1 });
    const p = asPublish(await c2.client.next('publish'));
    assert.equal(p.payload.toString(), 'small');
    c2.client.send({ cmd: 'puback', messageId: p.messageId });
    await until(() => b.broker.sessions.get('big')!.outbound.inflight.size === 0, 2000, 'empty in-flight window');
  });
});

test('on reconnect the broker re-sends no more unacknowledged PUBLISHes than the new Receive Maximum', async () => {
  await withBroker(async (b, track) => {
    const c1 = await RawClient.connect(b.port, { clientId: 'rmr', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60, receiveMaximum: 5 } });
    c1.client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rmr', qos: 1 }] });
    await c1.client.next('suback');
    const pub = track(await connect(b.port, { protocolVersion: 5, clientId: 'rmr-pub' }));
    for (let i = 0; i < 5; i++) await pub.publishAsync('rmr', String(i), { qos: 1 });
    await c1.client.take('publish', 5);
    c1.client.destroy();
    await c1.client.waitClosed();
    const c2 = await RawClient.connect(b.port, { clientId: 'rmr', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60, receiveMaximum: 2 } });
    track(c2.client);
    const first = (await c2.client.take('publish', 2)).map(asPublish);
    assert.deepEqual(first.map((p) => [p.payload.toString(), p.dup]), [['0', true], ['1', true]]);
    await c2.client.expectNone('publish', 150);
    // Each acknowledgement lets one more through, in order and still marked DUP.
    const rest: string[] = [];
    let last = first[1];
    c2.client.send({ cmd: 'puback', messageId: first[0].messageId });
    for (let i = 0; i < 3; i++) {
      const p = asPublish(await c2.client.next('publish'));
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
      const c1 = await RawClient.connect(b.port, { clientId: 'carry', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } });
      c1.client.send({ cmd: 'publish', topic: 'carry', payload: Buffer.from('x'), qos: 2, messageId: 1, dup: false, retain: false });
      await c1.client.next('pubrec');
      c1.client.destroy();
      await c1.client.waitClosed();
      const c2 = await RawClient.connect(b.port, { clientId: 'carry', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } });
      c2.client.send({ cmd: 'pubrel', messageId: 1 });
      await c2.client.next('pubcomp');
      // Now 2 in flight is the limit; the third is one too many.
      for (const id of [2, 3]) c2.client.send({ cmd: 'publish', topic: 'carry', payload: Buffer.from('x'), qos: 2, messageId: id, dup: false, retain: false });
      await c2.client.take('pubrec', 2);
      c2.client.send({ cmd: 'publish', topic: 'carry', payload: Buffer.from('x'), qos: 2, messageId: 4, dup: false, retain: false });
      const d = (await c2.client.next('disconnect')) as IDisconnectPacket;
      assert.equal(d.reasonCode, 0x93);
      await c2.client.waitClosed();
    },
    { receiveMaximum: 2 },
  );
});

test('a will with a payload format indicator and a non-UTF-8 payload is refused (CONNACK 0x99)', async () => {
  await withBroker(async (b) => {
    const r = await RawClient.connect(b.port, {
      clientId: 'wpf',
      protocolVersion: 5,
      will: { topic: 'w', payload: Buffer.from([0xc3, 0x28]), qos: 0, retain: false, properties: { payloadFormatIndicator: true } },
    });
    assert.equal((r.connack as IConnackPacket).reasonCode, 0x99);
    await r.client.waitClosed();
  });
});

test('WebSocket listener: MQTT over WebSocket works end to end', async () => {
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
    },
    { wsPort },
  );
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}
