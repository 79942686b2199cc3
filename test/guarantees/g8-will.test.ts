// G8: the will is published on every ungraceful disconnect, including a broker crash (published
// after the restart); not on a normal DISCONNECT; will delay and session expiry are honoured.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConnectPacket, ProtocolVersion } from '../../src/protocol/packets';
import { startTestBroker } from '../helpers';
import { BrokerOnDisk } from './broker-process';
import { RawClient, payloads } from '../mqtt-helpers';

type Will = NonNullable<ConnectPacket['will']>;
const will = (topic: string, payload: string, properties?: Will['properties']): Will => ({ topic, payload, qos: 1, retain: false, properties });

async function watcher(port: number, filter: string): Promise<RawClient> {
  const { client } = await RawClient.connect(port, 5, { clientId: `watch-${filter.replace(/\W/g, '')}` });
  await client.subscribe(filter, 1);
  return client;
}

/** Publishes `marker` from another client and waits for it: wills published before it have arrived. */
async function barrier(port: number, watch: RawClient, topic: string): Promise<void> {
  const { client } = await RawClient.connect(port, 4, { clientId: 'barrier' });
  client.publish(topic, 'marker', 1, 1);
  await client.take('puback');
  await watch.take('publish', (p) => p.payload.toString() === 'marker');
  await client.destroy();
}

for (const version of [5, 4] as ProtocolVersion[]) {
  const v = version === 5 ? '5' : '3.1.1';
  test(`G8 MQTT ${v}: will on a cut connection, none after a normal DISCONNECT`, async () => {
    const b = await startTestBroker();
    const clients: RawClient[] = [];
    try {
      const watch = await watcher(b.port, 'g8/#');
      clients.push(watch);
      const { client: cut } = await RawClient.connect(b.port, version, { clientId: 'g8-cut', will: will('g8/w', `cut-${v}`) });
      await cut.destroy();
      const w = await watch.take('publish', (p) => p.payload.toString() === `cut-${v}`);
      assert.equal(w.topic, 'g8/w');
      assert.equal(w.qos, 1);

      const { client: polite } = await RawClient.connect(b.port, version, { clientId: 'g8-polite', will: will('g8/w', `polite-${v}`) });
      await polite.disconnect();
      await barrier(b.port, watch, 'g8/w');
      assert.deepEqual(payloads(watch.all('publish')), [`cut-${v}`, 'marker']);
      assert.equal(b.broker.stats.willsPublished, 1);
    } finally {
      for (const c of clients) await c.destroy();
      await b.stop();
    }
  });
}

test('G8 MQTT 5: DISCONNECT 0x04 publishes the will; a protocol error close publishes it too', async () => {
  const b = await startTestBroker();
  const clients: RawClient[] = [];
  try {
    const watch = await watcher(b.port, 'g8b/#');
    clients.push(watch);
    const { client: c1 } = await RawClient.connect(b.port, 5, { clientId: 'g8b-1', will: will('g8b/w', 'with-will') });
    await c1.disconnect(0x04);
    await watch.take('publish', (p) => p.payload.toString() === 'with-will');
    const { client: c2 } = await RawClient.connect(b.port, 5, { clientId: 'g8b-2', will: will('g8b/w', 'protocol-error') });
    c2.writeRaw(Buffer.from([0x36, 0x00])); // PUBLISH with QoS 3: malformed
    await c2.waitClosed();
    await watch.take('publish', (p) => p.payload.toString() === 'protocol-error');
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});

test('G8 MQTT 5: will delay: a reconnect within the delay cancels the will; without one it is published after the delay', async () => {
  const b = await startTestBroker();
  const clients: RawClient[] = [];
  try {
    const watch = await watcher(b.port, 'g8d/#');
    clients.push(watch);
    const props = { sessionExpiryInterval: 60 };
    const { client: c1 } = await RawClient.connect(b.port, 5, { clientId: 'g8d-back', properties: props, will: will('g8d/w', 'cancelled', { willDelayInterval: 1 }) });
    await c1.destroy();
    const { client: back } = await RawClient.connect(b.port, 5, { clientId: 'g8d-back', clean: false, properties: props });
    clients.push(back);

    const { client: c2 } = await RawClient.connect(b.port, 5, { clientId: 'g8d-gone', properties: props, will: will('g8d/w', 'delayed', { willDelayInterval: 1 }) });
    await c2.destroy();
    await watch.take('publish', (p) => p.payload.toString() === 'delayed', 5000);
    // Without the cancel, the other will (armed first, with the same delay: its timer fires first)
    // would have been published before this one.
    await barrier(b.port, watch, 'g8d/w');
    assert.deepEqual(payloads(watch.all('publish')), ['delayed', 'marker']);
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});

test('G8 MQTT 5: a session expiry shorter than the will delay publishes the will when the session ends', async () => {
  const b = await startTestBroker();
  const clients: RawClient[] = [];
  try {
    const watch = await watcher(b.port, 'g8e/#');
    clients.push(watch);
    const { client } = await RawClient.connect(b.port, 5, {
      clientId: 'g8e',
      properties: { sessionExpiryInterval: 1 },
      will: will('g8e/w', 'at-expiry', { willDelayInterval: 3600 }),
    });
    await client.destroy();
    await watch.take('publish', (p) => p.payload.toString() === 'at-expiry', 5000);
    const { connack } = await RawClient.connect(b.port, 5, { clientId: 'g8e', clean: false }).then((r) => {
      clients.push(r.client);
      return r;
    });
    assert.equal(connack.sessionPresent, false, 'the session ended');
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});

test('G8 after kill -9: the will of a connection cut by the crash is published after the restart', async () => {
  const broker = new BrokerOnDisk();
  const clients: RawClient[] = [];
  try {
    let port = await broker.start();
    const { client: sub0 } = await RawClient.connect(port, 4, { clientId: 'g8c-sub', clean: false });
    clients.push(sub0);
    await sub0.subscribe('g8c/#', 1);
    // The polite client goes first: DISCONNECT has no ack, so the removal of its will becomes durable
    // in the background; the later CONNACKs wait for commits ordered after it.
    const { client: polite } = await RawClient.connect(port, 4, { clientId: 'g8c-polite', will: will('g8c/w', 'never') });
    await polite.disconnect();
    const { client: v4 } = await RawClient.connect(port, 4, { clientId: 'g8c-v4', will: will('g8c/w', 'will-v4') });
    const { client: v5 } = await RawClient.connect(port, 5, {
      clientId: 'g8c-v5',
      properties: { sessionExpiryInterval: 60 },
      will: will('g8c/w', 'will-v5-delayed', { willDelayInterval: 1 }),
    });
    clients.push(v4, v5);

    port = await broker.restart(); // every connection is cut by the crash

    const { client: sub, connack } = await RawClient.connect(port, 4, { clientId: 'g8c-sub', clean: false });
    clients.push(sub);
    assert.equal(connack.sessionPresent, true);
    const got: string[] = [];
    for (let i = 0; i < 2; i++) {
      const p = await sub.take('publish', undefined, 8000);
      got.push(p.payload.toString());
      sub.send({ cmd: 'puback', messageId: p.messageId });
    }
    assert.deepEqual(got.sort(), ['will-v4', 'will-v5-delayed']);
    await barrier(port, sub, 'g8c/w');
    assert.ok(!payloads(sub.all('publish')).includes('never'), 'no will after a normal DISCONNECT');
  } finally {
    for (const c of clients) await c.destroy();
    await broker.stop();
  }
});

test('G8: a keep-alive timeout is an ungraceful disconnect: the will is published (MQTT 5 also gets DISCONNECT 0x8D)', async () => {
  const b = await startTestBroker();
  const clients: RawClient[] = [];
  try {
    const watch = await watcher(b.port, 'g8k/#');
    clients.push(watch);
    const { client: v5 } = await RawClient.connect(b.port, 5, { clientId: 'g8k-5', keepalive: 1, will: will('g8k/w', 'silent-5') });
    const { client: v4 } = await RawClient.connect(b.port, 4, { clientId: 'g8k-4', keepalive: 1, will: will('g8k/w', 'silent-4') });
    clients.push(v5, v4);
    await v5.waitClosed(6000);
    await v4.waitClosed(6000);
    assert.equal((await v5.take('disconnect')).reasonCode, 0x8d);
    const got = [await watch.take('publish'), await watch.take('publish')].map((p) => p.payload.toString());
    assert.deepEqual(got.sort(), ['silent-4', 'silent-5']);
  } finally {
    for (const c of clients) await c.destroy();
    await b.stop();
  }
});
