import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IClientOptions, MqttClient } from 'mqtt';
import { collect, connect } from '../helpers';
import { ManualClock } from '../manual-clock';
import { waitUntil } from '../guarantees/wait';
import { RawClient, arrivedBeforeMarker, payloads, withBroker, type TestBroker } from '../mqtt-helpers';

type Watcher = ReturnType<typeof collect> & { client: MqttClient };

async function watch(b: TestBroker, filter: string, protocolVersion: 4 | 5 = 5): Promise<Watcher> {
  const client = await connect(b.port, { protocolVersion, clientId: `watch-${filter}-${Math.random()}` });
  const c = collect(client);
  await client.subscribeAsync(filter, { qos: 1 });
  return { ...c, client };
}

function willOptions(topic: string, payload: string, extra: Partial<NonNullable<IClientOptions['will']>> = {}): IClientOptions['will'] {
  return { topic, payload: Buffer.from(payload), qos: 1, retain: false, ...extra };
}

for (const protocolVersion of [3, 4, 5] as const) {
  test(`v${protocolVersion}: the will is published when the socket closes without DISCONNECT, and not after a normal DISCONNECT`, async () => {
    await withBroker(async (b, track) => {
      const w = await watch(b, 'will/#');
      track(w.client);
      const extra = protocolVersion === 3 ? { protocolId: 'MQIsdp' as const } : {};
      const normal = await connect(b.port, { protocolVersion, clientId: 'normal', will: willOptions('will/normal', 'bye'), ...extra });
      await new Promise<void>((r) => normal.end(false, {}, () => r()));
      const cut = await connect(b.port, { protocolVersion, clientId: 'cut', will: willOptions('will/cut', 'lost'), ...extra });
      cut.stream.destroy();
      const [m] = await w.waitFor(1);
      assert.equal(m.topic, 'will/cut');
      assert.equal(m.payload.toString(), 'lost');
      assert.equal(m.packet.qos, 1);
      cut.end(true);
      // The broker has ended the normal session: a will it published would be queued before the marker.
      await waitUntil(() => !b.broker.sessions.has('normal'), 'the broker to end the normal session');
      assert.deepEqual(payloads(await arrivedBeforeMarker(w.client, 'will/marker', w)), ['lost']);
    });
  });
}

test('the will is published on keep alive timeout and on a protocol error', async () => {
  await withBroker(async (b, track) => {
    const w = await watch(b, 'wk/#');
    track(w.client);
    const ka = await RawClient.connect(b.port, 4, {
      clientId: 'ka',
      keepalive: 1,
      will: { topic: 'wk/ka', payload: Buffer.from('timeout'), qos: 1, retain: false },
    });
    const pe = await RawClient.connect(b.port, 5, {
      clientId: 'pe',
      will: { topic: 'wk/pe', payload: Buffer.from('error'), qos: 0, retain: false },
    });
    pe.client.send({ cmd: 'publish', topic: 'wk/#', payload: Buffer.from('x'), qos: 0, dup: false, retain: false });
    assert.equal((await pe.client.take('disconnect')).reasonCode, 0x90);
    const [first] = await w.waitFor(1);
    assert.deepEqual([first.topic, first.payload.toString()], ['wk/pe', 'error']);
    await ka.client.waitClosed(6000);
    const ms = await w.waitFor(2, 3000);
    assert.deepEqual([ms[1].topic, ms[1].payload.toString()], ['wk/ka', 'timeout']);
  });
});

test('MQTT 5 DISCONNECT with reason 0x04 publishes the will; with 0x00 it does not', async () => {
  await withBroker(async (b, track) => {
    const w = await watch(b, 'wd/#');
    track(w.client);
    const will = { topic: 'wd/x', payload: Buffer.from('asked'), qos: 1 as const, retain: false, properties: { contentType: 'text/plain', userProperties: { k: 'v' } } };
    const a = await RawClient.connect(b.port, 5, { clientId: 'wd0', will: { ...will, payload: Buffer.from('no') } });
    a.client.send({ cmd: 'disconnect', reasonCode: 0 });
    await a.client.waitClosed();
    const c = await RawClient.connect(b.port, 5, { clientId: 'wd4', will });
    c.client.send({ cmd: 'disconnect', reasonCode: 0x04 });
    await c.client.waitClosed();
    const [m] = await w.waitFor(1);
    assert.equal(m.payload.toString(), 'asked');
    assert.equal(m.packet.properties?.contentType, 'text/plain');
    assert.deepEqual({ ...m.packet.properties?.userProperties }, { k: 'v' });
    await waitUntil(() => !b.broker.sessions.has('wd0'), 'the broker to end the session of wd0');
    assert.deepEqual(payloads(await arrivedBeforeMarker(w.client, 'wd/marker', w)), ['asked']);
  });
});

test('a retained will becomes the retained message of its topic', async () => {
  await withBroker(async (b, track) => {
    const c = await connect(b.port, { protocolVersion: 4, clientId: 'rw', will: willOptions('status/rw', 'offline', { retain: true }) });
    c.stream.destroy();
    c.end(true);
    // A later subscriber gets it as a retained message.
    await waitUntil(() => b.broker.retained.has('status/rw'), 'the will to be retained');
    const late = track(await connect(b.port, { protocolVersion: 5, clientId: 'late' }));
    const g = collect(late);
    await late.subscribeAsync('status/+', { qos: 1 });
    const [m] = await g.waitFor(1);
    assert.equal(m.payload.toString(), 'offline');
    assert.equal(m.packet.retain, true);
  });
});

test('will delay: the will is published after the delay, and a reconnect within the delay cancels it (on a clock the test moves)', async () => {
  const clock = new ManualClock();
  await withBroker(
    async (b, track) => {
      const w = await watch(b, 'wdl/#');
      track(w.client);
      const delayed = await RawClient.connect(b.port, 5, {
        clientId: 'delayed',
        properties: { sessionExpiryInterval: 30 },
        will: { topic: 'wdl/delayed', payload: Buffer.from('late'), qos: 1, retain: false, properties: { willDelayInterval: 1 } },
      });
      const cancelled = await RawClient.connect(b.port, 5, {
        clientId: 'cancelled',
        properties: { sessionExpiryInterval: 30 },
        will: { topic: 'wdl/cancelled', payload: Buffer.from('never'), qos: 1, retain: false, properties: { willDelayInterval: 1 } },
      });
      await delayed.client.destroy();
      await cancelled.client.destroy();
      await waitUntil(() => ['delayed', 'cancelled'].every((id) => b.broker.sessions.get(id)?.online === false), 'the broker to see both connections cut');
      clock.advance(999);
      assert.deepEqual(payloads(await arrivedBeforeMarker(w.client, 'wdl/marker', w)), [], 'no will 1 ms before the delay ends');
      const back = await RawClient.connect(b.port, 5, { clientId: 'cancelled', clean: false, properties: { sessionExpiryInterval: 30 } });
      track(back.client);
      clock.advance(1);
      await waitUntil(() => w.arrived.some((p) => p.topic === 'wdl/delayed'), 'the delayed will');
      clock.advance(60_000);
      const topics = (await arrivedBeforeMarker(w.client, 'wdl/marker', w)).map((p) => p.topic);
      assert.deepEqual(topics.filter((t) => t !== 'wdl/marker'), ['wdl/delayed'], 'the reconnect cancelled the other will');
    },
    {},
    { clock },
  );
});

test('will delay longer than the session expiry: the will is published when the session ends', async () => {
  await withBroker(async (b, track) => {
    const w = await watch(b, 'wse/#');
    track(w.client);
    const c = await RawClient.connect(b.port, 5, {
      clientId: 'wse',
      properties: { sessionExpiryInterval: 1 },
      will: { topic: 'wse/x', payload: Buffer.from('ended'), qos: 1, retain: false, properties: { willDelayInterval: 600 } },
    });
    await c.client.destroy();
    // Once the broker has handled the disconnect, a marker goes out: a will published at the
    // disconnect (the delay ignored) would come before it; one published when the session ends, after.
    await waitUntil(() => b.broker.sessions.get('wse')?.online === false, 'the broker to see the disconnect');
    await w.client.publishAsync('wse/marker', 'marker', { qos: 1 });
    const [marker, m] = await w.waitFor(2, 4000);
    assert.equal(marker.topic, 'wse/marker', 'the will came before the session ended');
    assert.equal(m.payload.toString(), 'ended');
  });
});

test('session takeover publishes the first connection\'s will (no delay), and the new connection\'s will is kept', async () => {
  await withBroker(async (b, track) => {
    const w = await watch(b, 'wt/#');
    track(w.client);
    const first = await RawClient.connect(b.port, 5, { clientId: 'wt', will: { topic: 'wt/1', payload: Buffer.from('first'), qos: 1, retain: false } });
    const second = await RawClient.connect(b.port, 5, { clientId: 'wt', will: { topic: 'wt/2', payload: Buffer.from('second'), qos: 1, retain: false } });
    assert.equal((await first.client.take('disconnect')).reasonCode, 0x8e);
    const [m] = await w.waitFor(1);
    assert.equal(m.topic, 'wt/1');
    await first.client.waitClosed();
    assert.deepEqual(payloads(await arrivedBeforeMarker(w.client, 'wt/marker', w)), ['first'], "the first connection's close does not fire the second's will");
    await second.client.destroy();
    const ms = await w.waitFor(3);
    assert.deepEqual(ms.map((x) => x.topic), ['wt/1', 'wt/marker', 'wt/2']);
  });
});

test('MQTT 5 DISCONNECT with an error reason code (0x80) publishes the will: only 0x00 deletes it', async () => {
  await withBroker(async (b, track) => {
    const w = await watch(b, 'wde/#');
    track(w.client);
    const c = await RawClient.connect(b.port, 5, { clientId: 'wde', will: { topic: 'wde/x', payload: Buffer.from('error'), qos: 1, retain: false } });
    c.client.send({ cmd: 'disconnect', reasonCode: 0x80 });
    await c.client.waitClosed();
    const [m] = await w.waitFor(1);
    assert.equal(m.payload.toString(), 'error');
  });
});
