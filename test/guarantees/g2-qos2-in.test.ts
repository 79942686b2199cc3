// G2: QoS 2 in, exactly once. A re-sent PUBLISH with the same packet id gets PUBREC and is not
// forwarded again; PUBREL releases the id (PUBCOMP); this holds across kill -9 of the broker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory-store';
import type { ProtocolVersion } from '../../src/protocol/packets';
import { startTestBroker } from '../helpers';
import { BrokerOnDisk } from './broker-process';
import { RawClient, payloads } from '../mqtt-helpers';
import { FaultyStore, GatedStore } from './stores';

for (const version of [5, 4] as ProtocolVersion[]) {
  test(`G2 MQTT ${version === 5 ? '5' : '3.1.1'}: a re-sent QoS 2 PUBLISH is answered with PUBREC and delivered once`, async () => {
    const b = await startTestBroker();
    const clients: RawClient[] = [];
    try {
      const { client: sub } = await RawClient.connect(b.port, 5, { clientId: 'g2-sub' });
      clients.push(sub);
      await sub.subscribe('g2/#', 2);
      const { client: pub } = await RawClient.connect(b.port, version, { clientId: 'g2-pub', clean: false, properties: version === 5 ? { sessionExpiryInterval: 60 } : undefined });
      clients.push(pub);

      pub.publish('g2/t', 'once', 2, 7);
      assert.equal((await pub.take('pubrec', (p) => p.messageId === 7)).reasonCode ?? 0, 0);
      pub.publish('g2/t', 'once', 2, 7, { dup: true });
      assert.equal((await pub.take('pubrec', (p) => p.messageId === 7)).reasonCode ?? 0, 0);
      pub.send({ cmd: 'pubrel', messageId: 7 });
      assert.equal((await pub.take('pubcomp', (p) => p.messageId === 7)).reasonCode ?? 0, 0);

      // After PUBREL the id is free again: the same id now carries a new message.
      pub.publish('g2/t', 'second', 2, 7);
      await pub.take('pubrec', (p) => p.messageId === 7);
      pub.send({ cmd: 'pubrel', messageId: 7 });
      await pub.take('pubcomp', (p) => p.messageId === 7);

      await sub.take('publish', (p) => p.payload.toString() === 'second');
      await sub.ping();
      assert.deepEqual(payloads(sub.all('publish')), ['once', 'second']);
    } finally {
      for (const c of clients) await c.destroy();
      await b.stop();
    }
  });
}

test('G2: a duplicate that arrives while the original is still being stored gets PUBREC after it, one delivery', async () => {
  const store = new GatedStore(new MemoryStore());
  const b = await startTestBroker({}, { store });
  const clients: RawClient[] = [];
  try {
    const { client: sub } = await RawClient.connect(b.port, 4, { clientId: 'g2-sub-gated', clean: false });
    clients.push(sub);
    await sub.subscribe('g2/#', 2);
    const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'g2-pub-gated', properties: { sessionExpiryInterval: 60 } });
    clients.push(pub);
    store.hold();
    pub.publish('g2/g', 'gated', 2, 3);
    pub.publish('g2/g', 'gated', 2, 3, { dup: true });
    await pub.ping();
    assert.deepEqual(pub.all('pubrec'), [], 'no PUBREC before the message and its packet-id record are stored');
    const pending = store.pending.flat();
    assert.ok(pending.some((op) => op.op === 'putInboundQos2' && op.packetId === 3), 'the packet-id record commits with the message');
    store.release();
    await pub.take('pubrec', (p) => p.messageId === 3);
    await pub.take('pubrec', (p) => p.messageId === 3);
    pub.send({ cmd: 'pubrel', messageId: 3 });
    await pub.take('pubcomp', (p) => p.messageId === 3);
    pub.publish('g2/g', 'marker', 1, 4);
    await pub.take('puback', (p) => p.messageId === 4);
    await sub.take('publish', (p) => p.payload.toString() === 'marker');
    assert.deepEqual(payloads(sub.all('publish')), ['gated', 'marker']);
  } finally {
    store.release();
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});

test('G2 after kill -9: the re-sent PUBLISH with the same id gets PUBREC and is not forwarded again', async () => {
  const broker = new BrokerOnDisk();
  const clients: RawClient[] = [];
  try {
    let port = await broker.start();
    // A persistent subscriber that is offline while all this happens.
    const { client: sub0 } = await RawClient.connect(port, 4, { clientId: 'g2c-sub', clean: false });
    await sub0.subscribe('g2c/#', 2);
    await sub0.disconnect();

    const { client: pub0 } = await RawClient.connect(port, 4, { clientId: 'g2c-pub', clean: false });
    clients.push(pub0);
    pub0.publish('g2c/t', 'crash-once', 2, 9);
    await pub0.take('pubrec', (p) => p.messageId === 9);

    port = await broker.restart(); // kill -9, then start on the same data dir
    const { client: pub, connack } = await RawClient.connect(port, 4, { clientId: 'g2c-pub', clean: false });
    clients.push(pub);
    assert.equal(connack.sessionPresent, true);
    pub.publish('g2c/t', 'crash-once', 2, 9, { dup: true });
    await pub.take('pubrec', (p) => p.messageId === 9);
    pub.send({ cmd: 'pubrel', messageId: 9 });
    await pub.take('pubcomp', (p) => p.messageId === 9);
    pub.publish('g2c/t', 'marker', 2, 10);
    await pub.take('pubrec', (p) => p.messageId === 10);
    pub.send({ cmd: 'pubrel', messageId: 10 });
    await pub.take('pubcomp', (p) => p.messageId === 10);

    const { client: sub, connack: subConnack } = await RawClient.connect(port, 4, { clientId: 'g2c-sub', clean: false });
    clients.push(sub);
    assert.equal(subConnack.sessionPresent, true);
    await sub.take('publish', (p) => p.payload.toString() === 'marker');
    assert.deepEqual(payloads(sub.all('publish')), ['crash-once', 'marker']);
  } finally {
    for (const c of clients) await c.destroy();
    await broker.stop();
  }
});

test('G2/G1 MQTT 5: a QoS 2 PUBLISH refused for a store failure gets PUBREC 0x80; sent again it is stored and delivered once', async () => {
  const store = new FaultyStore(new MemoryStore());
  store.failWhen = (ops) => ops.some((op) => op.op === 'putInboundQos2');
  const b = await startTestBroker({ publishMaxRetries: 1, publishRetryBaseMs: 1, publishRetryMaxMs: 2 }, { store });
  const clients: RawClient[] = [];
  try {
    const { client: sub } = await RawClient.connect(b.port, 5, { clientId: 'g2f-sub', properties: { sessionExpiryInterval: 60 } });
    clients.push(sub);
    await sub.subscribe('g2f/#', 2);
    const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'g2f-pub', properties: { sessionExpiryInterval: 60 } });
    clients.push(pub);
    store.failNext = 2;
    pub.publish('g2f/t', 'retry-me', 2, 4);
    assert.equal((await pub.take('pubrec', (p) => p.messageId === 4)).reasonCode, 0x80);
    await sub.ping();
    assert.deepEqual(sub.all('publish'), [], 'nothing delivered for the refused publish');
    pub.publish('g2f/t', 'retry-me', 2, 4);
    assert.equal((await pub.take('pubrec', (p) => p.messageId === 4)).reasonCode ?? 0, 0);
    pub.send({ cmd: 'pubrel', messageId: 4 });
    assert.equal((await pub.take('pubcomp', (p) => p.messageId === 4)).reasonCode ?? 0, 0);
    await sub.take('publish', (p) => p.payload.toString() === 'retry-me');
    await sub.ping();
    assert.deepEqual(payloads(sub.all('publish')), ['retry-me']);
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});
