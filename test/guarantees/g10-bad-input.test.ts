// G10: bad input never crashes the broker. Malformed packets → DISCONNECT 0x81 (MQTT 5) or a close;
// oversize packets refused from their fixed header; offline queues and slow consumers bounded;
// maxConnections enforced with CONNACK "server busy".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger, type Logger } from '../../src/broker/options';
import { startBroker } from '../../src/index';
import { defaultConfig, type Config } from '../../src/ops/config';
import { startTestBroker } from '../helpers';
import { RawClient, payloads } from '../mqtt-helpers';
import { waitUntil } from './wait';

async function roundTrip(port: number): Promise<void> {
  const { client } = await RawClient.connect(port, 5, { clientId: 'g10-health' });
  try {
    await client.subscribe('g10/health', 1);
    client.publish('g10/health', 'ok', 1, 1);
    const p = await client.take('publish');
    assert.equal(p.payload.toString(), 'ok');
  } finally {
    await client.destroy();
  }
}

test('G10: malformed packets: MQTT 5 gets DISCONNECT 0x81, MQTT 3.1.1 a close, before CONNECT a close; the broker stays up', async () => {
  const b = await startTestBroker();
  try {
    const { client: v5 } = await RawClient.connect(b.port, 5, { clientId: 'g10-v5' });
    v5.writeRaw(Buffer.from([0x36, 0x00])); // PUBLISH with both QoS bits set
    await v5.waitClosed();
    const d = await v5.take('disconnect');
    assert.equal(d.reasonCode, 0x81);

    const { client: v4 } = await RawClient.connect(b.port, 4, { clientId: 'g10-v4' });
    v4.writeRaw(Buffer.from([0x80, 0x00])); // SUBSCRIBE with reserved flags 0000: malformed
    await v4.waitClosed();
    assert.deepEqual(v4.all('disconnect'), []);

    const early = await RawClient.open(b.port, 5);
    early.writeRaw(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]));
    await early.waitClosed();
    assert.deepEqual(early.received, []);

    const notConnect = await RawClient.open(b.port, 4);
    notConnect.send({ cmd: 'pingreq' }); // the first packet must be CONNECT
    await notConnect.waitClosed();
    assert.deepEqual(notConnect.received, []);

    assert.ok(b.broker.stats.malformedPackets >= 2);
    await roundTrip(b.port);
  } finally {
    await b.stop();
  }
});

test('G10: an oversize packet is refused from its fixed header, before its body is sent (MQTT 5: DISCONNECT 0x95)', async () => {
  const b = await startTestBroker({ maxPacketSize: 1024 });
  try {
    const { client: v5, connack } = await RawClient.connect(b.port, 5, { clientId: 'g10-big5' });
    assert.equal(connack.properties?.maximumPacketSize, 1024);
    // PUBLISH announcing 100 MB: only the fixed header is sent, the broker must not wait for the body.
    v5.writeRaw(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x30]));
    await v5.waitClosed();
    const d = await v5.take('disconnect');
    assert.equal(d.reasonCode, 0x95);

    const { client: v4 } = await RawClient.connect(b.port, 4, { clientId: 'g10-big4' });
    v4.writeRaw(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f])); // the largest remaining length MQTT allows
    await v4.waitClosed();

    // A remaining length of five bytes is malformed whatever the limit.
    const bad = await RawClient.open(b.port, 4);
    bad.writeRaw(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]));
    await bad.waitClosed();
    await roundTrip(b.port);
  } finally {
    await b.stop();
  }
});

test('G10: maxConnections: a further CONNECT gets CONNACK server busy (MQTT 5 0x89, 3.1.1 code 3)', async () => {
  const b = await startTestBroker({ maxConnections: 2 });
  const clients: RawClient[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const { client, connack } = await RawClient.connect(b.port, 5, { clientId: `g10-c${i}` });
      clients.push(client);
      assert.equal(connack.reasonCode, 0);
    }
    const { client: busy5, connack: c5 } = await RawClient.connect(b.port, 5, { clientId: 'g10-busy5' });
    assert.equal(c5.reasonCode, 0x89);
    await busy5.waitClosed();
    const { client: busy4, connack: c4 } = await RawClient.connect(b.port, 4, { clientId: 'g10-busy4' });
    assert.equal(c4.returnCode, 3);
    await busy4.waitClosed();
    await clients.pop()!.destroy();
    await waitUntil(() => b.broker.stats.connections < 2, 'the closed connection to be counted');
    const { client: ok, connack } = await RawClient.connect(b.port, 5, { clientId: 'g10-again' });
    clients.push(ok);
    assert.equal(connack.reasonCode, 0);
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});

for (const policy of ['drop-oldest', 'drop-new'] as const) {
  test(`G10: an offline queue is bounded by maxQueuedMessages (${policy}), counted in messagesDroppedQueueFull and logged`, async () => {
    const warnings: string[] = [];
    const log: Logger = { ...silentLogger, warn: (_obj, msg) => warnings.push(msg) };
    const config: Config = { ...defaultConfig, host: '127.0.0.1', port: 0, store: 'memory', logLevel: 'silent', maxQueuedMessages: 3, queueOverflow: policy };
    const b = await startBroker(config, log);
    const clients: RawClient[] = [];
    try {
      const { client: sub0 } = await RawClient.connect(b.port, 4, { clientId: 'g10-q', clean: false });
      await sub0.subscribe('g10q/#', 1);
      await sub0.disconnect();
      const { client: pub } = await RawClient.connect(b.port, 4, { clientId: 'g10-qpub' });
      clients.push(pub);
      for (let i = 1; i <= 6; i++) pub.publish('g10q/t', `m${i}`, 1, i);
      for (let i = 1; i <= 6; i++) await pub.take('puback', (p) => p.messageId === i);
      assert.equal(b.broker.stats.messagesDroppedQueueFull, 3);
      const { client: sub } = await RawClient.connect(b.port, 4, { clientId: 'g10-q', clean: false });
      clients.push(sub);
      const want = policy === 'drop-oldest' ? ['m4', 'm5', 'm6'] : ['m1', 'm2', 'm3'];
      await sub.take('publish', (p) => p.payload.toString() === want[2]);
      await sub.ping();
      assert.deepEqual(payloads(sub.all('publish')), want);
      assert.equal(warnings.filter((w) => w.includes('session queue full')).length, 1, 'one (rate-limited) log line');
    } finally {
      for (const c of clients) await c.destroy();
      await b.stop();
    }
  });
}

test('G10: an offline queue is bounded by maxQueuedBytes', async () => {
  const b = await startTestBroker({ maxQueuedBytes: 1024, queueOverflow: 'drop-new' });
  const clients: RawClient[] = [];
  try {
    const { client: sub0 } = await RawClient.connect(b.port, 5, { clientId: 'g10-qb', properties: { sessionExpiryInterval: 60 } });
    await sub0.subscribe('g10qb/#', 1);
    await sub0.disconnect();
    const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'g10-qbpub' });
    clients.push(pub);
    for (let i = 1; i <= 4; i++) pub.publish('g10qb/t', `${i}`.padEnd(400, '.'), 1, i);
    for (let i = 1; i <= 4; i++) await pub.take('puback', (p) => p.messageId === i);
    assert.equal(b.broker.stats.messagesDroppedQueueFull, 2, 'two 400-byte payloads fit in 1024 bytes');
    const { client: sub } = await RawClient.connect(b.port, 5, { clientId: 'g10-qb', clean: false, properties: { sessionExpiryInterval: 60 } });
    clients.push(sub);
    await sub.take('publish', (p) => p.payload.toString().startsWith('2'));
    await sub.ping();
    assert.deepEqual(payloads(sub.all('publish')).map((s) => s[0]), ['1', '2']);
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});

test('G10: a slow consumer that does not read is bounded: its queue stays within maxQueuedMessages, others are served', async () => {
  const b = await startTestBroker({ maxWriteBuffer: 16 * 1024, maxQueuedMessages: 20, queueOverflow: 'drop-oldest' });
  const clients: RawClient[] = [];
  try {
    const { client: slow } = await RawClient.connect(b.port, 4, { clientId: 'g10-slow' });
    clients.push(slow);
    await slow.subscribe('g10s/#', 0);
    slow.socket.pause(); // never reads again
    const { client: pub } = await RawClient.connect(b.port, 4, { clientId: 'g10-spub' });
    clients.push(pub);
    const payload = Buffer.alloc(8 * 1024, 0x61);
    const N = 2000; // 16 MB: more than the kernel socket buffers take
    for (let i = 0; i < N; i++) pub.publish('g10s/t', payload, 0);
    await pub.ping();
    await waitUntil(() => b.broker.stats.messagesDroppedQueueFull > 0, 'the slow consumer queue to overflow', 10_000);
    const session = b.broker.sessions.get('g10-slow');
    assert.ok(session, 'the slow session exists');
    assert.ok(session.outbound.pendingCount <= 20, `queue bounded: ${session.outbound.pendingCount} pending`);
    await roundTrip(b.port);
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});

test('G10: SUBSCRIBE / UNSUBSCRIBE without any topic filter is a protocol error (MQTT 5: DISCONNECT 0x82), not a crash', async () => {
  const b = await startTestBroker();
  try {
    for (const [name, bytes] of [
      ['SUBSCRIBE v5', [0x82, 0x03, 0x00, 0x01, 0x00]],
      ['UNSUBSCRIBE v5', [0xa2, 0x03, 0x00, 0x01, 0x00]],
    ] as const) {
      const { client } = await RawClient.connect(b.port, 5, { clientId: 'g10-empty5' });
      client.writeRaw(Buffer.from(bytes));
      await client.waitClosed();
      const d = await client.take('disconnect');
      assert.equal(d.reasonCode, 0x82, name);
    }
    for (const [name, bytes] of [
      ['SUBSCRIBE 3.1.1', [0x82, 0x02, 0x00, 0x01]],
      ['UNSUBSCRIBE 3.1.1', [0xa2, 0x02, 0x00, 0x01]],
    ] as const) {
      const { client } = await RawClient.connect(b.port, 4, { clientId: 'g10-empty4' });
      client.writeRaw(Buffer.from(bytes));
      await client.waitClosed();
      assert.deepEqual(client.received.map((p) => p.cmd), ['connack'], name);
    }
    await roundTrip(b.port);
  } finally {
    await b.stop();
  }
});
