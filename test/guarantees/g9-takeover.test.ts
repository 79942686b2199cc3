// G9: a second CONNECT with the same client id closes the first connection (MQTT 5: DISCONNECT
// 0x8E); the session moves to the new connection and nothing is lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ProtocolVersion } from '../../src/protocol/packets';
import { startTestBroker } from '../helpers';
import { RawClient, payloads } from '../mqtt-helpers';

for (const version of [5, 4] as ProtocolVersion[]) {
  test(`G9 MQTT ${version === 5 ? '5 (DISCONNECT 0x8E)' : '3.1.1'}: takeover closes the first connection and keeps the session and its in-flight messages`, async () => {
    const b = await startTestBroker();
    const clients: RawClient[] = [];
    const props = version === 5 ? { sessionExpiryInterval: 300 } : undefined;
    try {
      const { client: first } = await RawClient.connect(b.port, version, { clientId: 'g9', clean: false, properties: props });
      clients.push(first);
      await first.subscribe('g9/#', 1);
      const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'g9-pub' });
      clients.push(pub);
      pub.publish('g9/t', 'inflight-1', 1, 1);
      pub.publish('g9/t', 'inflight-2', 1, 2);
      const m1 = await first.take('publish', (p) => p.payload.toString() === 'inflight-1');
      const m2 = await first.take('publish', (p) => p.payload.toString() === 'inflight-2');
      first.send({ cmd: 'puback', messageId: m1.messageId });
      await first.ping();

      const { client: second, connack } = await RawClient.connect(b.port, version, { clientId: 'g9', clean: false, properties: props });
      clients.push(second);
      assert.equal(connack.sessionPresent, true);
      await first.waitClosed();
      if (version === 5) {
        const disconnect = await first.take('disconnect');
        assert.equal(disconnect.reasonCode, 0x8e);
      } else {
        assert.deepEqual(first.all('disconnect'), [], 'MQTT 3.1.1 has no server DISCONNECT');
      }

      const again = await second.take('publish', (p) => p.payload.toString() === 'inflight-2');
      assert.deepEqual([again.dup, again.messageId], [true, m2.messageId]);
      pub.publish('g9/t', 'after-takeover', 1, 3);
      await second.take('publish', (p) => p.payload.toString() === 'after-takeover');
      await second.ping();
      assert.deepEqual(payloads(second.all('publish')), ['inflight-2', 'after-takeover']);
      await second.disconnect();
      assert.equal(b.broker.sessions.get('g9')?.subscriptions.has('g9/#'), true, 'the first connection closing did not end the session');
    } finally {
      for (const c of clients) await c.destroy();
      await b.stop();
    }
  });
}

test('G9: takeover with clean start discards the old session; the first connection\'s close does not touch the new one', async () => {
  const b = await startTestBroker();
  const clients: RawClient[] = [];
  try {
    const { client: first } = await RawClient.connect(b.port, 5, { clientId: 'g9c', properties: { sessionExpiryInterval: 300 } });
    clients.push(first);
    await first.subscribe('g9c/#', 1);
    const { client: second, connack } = await RawClient.connect(b.port, 5, { clientId: 'g9c', clean: true, properties: { sessionExpiryInterval: 300 } });
    clients.push(second);
    assert.equal(connack.sessionPresent, false);
    await first.waitClosed();
    await second.subscribe('g9c/new', 1);
    const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'g9c-pub' });
    clients.push(pub);
    pub.publish('g9c/old', 'to-old-filter', 1, 1);
    pub.publish('g9c/new', 'to-new-filter', 1, 2);
    await second.take('publish', (p) => p.payload.toString() === 'to-new-filter');
    await second.ping();
    assert.deepEqual(payloads(second.all('publish')), ['to-new-filter']);
    assert.equal(second.closed, false);
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});
