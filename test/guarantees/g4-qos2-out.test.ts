// G4: QoS 2 out, exactly once. Never re-sent under a new packet id; after PUBREC only PUBREL is
// re-sent; packet ids come from the durable delivery sequence, so they are the same after kill -9.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConnectPacket, ProtocolVersion, PublishPacket } from '../../src/protocol/packets';
import { MemoryStore } from '../../src/store/memory-store';
import { startTestBroker } from '../helpers';
import { BrokerOnDisk } from './broker-process';
import { RawClient, payloads } from '../mqtt-helpers';
import { GatedStore } from './stores';

function persistent(version: ProtocolVersion, clientId: string): Partial<ConnectPacket> & { clientId: string } {
  return version === 5 ? { clientId, clean: false, properties: { sessionExpiryInterval: 300 } } : { clientId, clean: false };
}

async function publishQos2(pub: RawClient, topic: string, payload: string, id: number): Promise<void> {
  pub.publish(topic, payload, 2, id);
  await pub.take('pubrec', (p) => p.messageId === id);
  pub.send({ cmd: 'pubrel', messageId: id });
  await pub.take('pubcomp', (p) => p.messageId === id);
}

for (const version of [5, 4] as ProtocolVersion[]) {
  test(`G4 MQTT ${version === 5 ? '5' : '3.1.1'}: on reconnect an unacked QoS 2 PUBLISH is re-sent with its id, a PUBREC'd one only as PUBREL`, async () => {
    const b = await startTestBroker();
    const clients: RawClient[] = [];
    try {
      const { client: sub0 } = await RawClient.connect(b.port, version, persistent(version, 'g4-sub'));
      clients.push(sub0);
      await sub0.subscribe('g4/#', 2);
      const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'g4-pub' });
      clients.push(pub);
      await publishQos2(pub, 'g4/t', 'a', 1);
      await publishQos2(pub, 'g4/t', 'b', 2);
      const a = await sub0.take('publish', (p) => p.payload.toString() === 'a');
      const bPub = await sub0.take('publish', (p) => p.payload.toString() === 'b');
      assert.equal(a.qos, 2);
      sub0.send({ cmd: 'pubrec', messageId: bPub.messageId });
      await sub0.take('pubrel', (p) => p.messageId === bPub.messageId);
      await sub0.destroy(); // 'a' unacknowledged, 'b' waiting for PUBCOMP

      const { client: sub1 } = await RawClient.connect(b.port, version, persistent(version, 'g4-sub'));
      clients.push(sub1);
      const aAgain = await sub1.take('publish');
      assert.deepEqual([aAgain.payload.toString(), aAgain.dup, aAgain.messageId], ['a', true, a.messageId]);
      await sub1.take('pubrel', (p) => p.messageId === bPub.messageId);
      await sub1.ping();
      assert.deepEqual(payloads(sub1.all('publish')), ['a'], "'b' was PUBREC'd: only its PUBREL is re-sent");

      // Finish both flows; a further reconnect re-sends nothing.
      sub1.send({ cmd: 'pubrec', messageId: a.messageId });
      await sub1.take('pubrel', (p) => p.messageId === a.messageId);
      sub1.send({ cmd: 'pubcomp', messageId: a.messageId });
      sub1.send({ cmd: 'pubcomp', messageId: bPub.messageId });
      await sub1.ping();
      await sub1.destroy();
      const { client: sub2 } = await RawClient.connect(b.port, version, persistent(version, 'g4-sub'));
      clients.push(sub2);
      await sub2.ping();
      assert.deepEqual(sub2.received.map((p) => p.cmd), ['connack', 'pingresp']);
    } finally {
      for (const c of clients) await c.destroy();
      await b.stop();
    }
  });
}

test('G4: PUBREL is sent only once the PUBREC state is durable (else a crash would re-send the PUBLISH after the client completed)', async () => {
  const store = new GatedStore(new MemoryStore());
  const b = await startTestBroker({}, { store });
  const clients: RawClient[] = [];
  try {
    const { client: sub } = await RawClient.connect(b.port, 5, persistent(5, 'g4g-sub'));
    clients.push(sub);
    await sub.subscribe('g4g/#', 2);
    const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'g4g-pub' });
    clients.push(pub);
    await publishQos2(pub, 'g4g/t', 'x', 1);
    const x = await sub.take('publish');
    store.hold();
    sub.send({ cmd: 'pubrec', messageId: x.messageId });
    await sub.ping();
    assert.ok(
      store.pending.flat().some((op) => op.op === 'setDeliveryState' && op.state === 'pubrec'),
      'the PUBREC state is being committed',
    );
    assert.deepEqual(sub.all('pubrel'), [], 'no PUBREL before the PUBREC state is durable');
    store.release();
    const rel = await sub.take('pubrel');
    assert.equal(rel.messageId, x.messageId);
  } finally {
    store.release();
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});

test('G4 after kill -9: packet ids are reproduced; a PUBREC\'d delivery is resumed with PUBREL, not PUBLISH', async () => {
  const broker = new BrokerOnDisk();
  const clients: RawClient[] = [];
  try {
    let port = await broker.start();
    const { client: sub0 } = await RawClient.connect(port, 5, persistent(5, 'g4c-sub'));
    clients.push(sub0);
    await sub0.subscribe('g4c/#', 2);
    const { client: pub } = await RawClient.connect(port, 5, { clientId: 'g4c-pub' });
    clients.push(pub);
    for (let i = 1; i <= 4; i++) await publishQos2(pub, 'g4c/t', `c${i}`, i);
    const got: PublishPacket[] = [];
    for (let i = 1; i <= 4; i++) got.push(await sub0.take('publish', (p) => p.payload.toString() === `c${i}`));
    // c1 completed, c2 PUBREC'd (PUBREL received), c3 and c4 unacknowledged.
    sub0.send({ cmd: 'pubrec', messageId: got[0].messageId });
    await sub0.take('pubrel', (p) => p.messageId === got[0].messageId);
    sub0.send({ cmd: 'pubcomp', messageId: got[0].messageId });
    sub0.send({ cmd: 'pubrec', messageId: got[1].messageId });
    await sub0.take('pubrel', (p) => p.messageId === got[1].messageId);

    port = await broker.restart(); // kill -9 right after the PUBREL went out
    const { client: sub } = await RawClient.connect(port, 5, persistent(5, 'g4c-sub'));
    clients.push(sub);
    const rel = await sub.take('pubrel', (p) => p.messageId === got[1].messageId);
    assert.equal(rel.messageId, got[1].messageId);
    const c3 = await sub.take('publish', (p) => p.payload.toString() === 'c3');
    const c4 = await sub.take('publish', (p) => p.payload.toString() === 'c4');
    assert.deepEqual([c3.dup, c3.messageId], [true, got[2].messageId]);
    assert.deepEqual([c4.dup, c4.messageId], [true, got[3].messageId]);
    await sub.ping();
    // c1 may come again only if its PUBCOMP's dequeue was lost; then only as PUBREL, never PUBLISH.
    assert.deepEqual(payloads(sub.all('publish')), ['c3', 'c4'], 'c1 and c2 are never re-sent as PUBLISH');
  } finally {
    for (const c of clients) await c.destroy();
    await broker.stop();
  }
});
