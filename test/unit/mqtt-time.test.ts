// MQTT's timers on a clock the test moves: will delay, session expiry, message expiry and keep
// alive, each checked just before and at its due time. No sleeps, no wall clock.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Broker } from '../../src/broker/broker';
import type { Packet, PublishPacket } from '../../src/protocol/packets';
import { MemoryStore } from '../../src/store/memory-store';
import { ManualClock } from '../manual-clock';
import { type FakeTransport, connected, enc, settle, withBroker } from './harness';

const publishes = (t: FakeTransport): PublishPacket[] => t.packets(5).filter((p: Packet): p is PublishPacket => p.cmd === 'publish');

/** Moves the clock and lets what its timers started (store commits, deliveries) finish. */
async function advance(clock: ManualClock, ms: number): Promise<void> {
  clock.advance(ms);
  await settle();
}

function withClock(fn: (broker: Broker, clock: ManualClock) => Promise<void>): Promise<void> {
  const clock = new ManualClock();
  return withBroker((broker) => fn(broker, clock), {}, new MemoryStore(), clock);
}

async function watcher(broker: Broker, clock: ManualClock, filter: string): Promise<FakeTransport> {
  const { ch, t } = await connected(broker, 5, { clientId: `watch-${filter}` }, clock.now());
  ch.receive(enc({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] }, 5), clock.now());
  await settle();
  return t;
}

const will = (topic: string, willDelayInterval: number) => ({
  topic,
  payload: Buffer.from('gone'),
  qos: 1 as const,
  retain: false,
  properties: { willDelayInterval },
});

test('will delay: the will is published exactly when the delay ends, not a millisecond before', async () => {
  await withClock(async (broker, clock) => {
    const w = await watcher(broker, clock, 'wd/#');
    const { ch } = await connected(broker, 5, { clientId: 'dying', will: will('wd/dying', 30), properties: { sessionExpiryInterval: 120 } }, clock.now());
    ch.transportClosed();
    await advance(clock, 29_999);
    assert.deepEqual(publishes(w), [], 'no will before 30 s');
    await advance(clock, 1);
    assert.deepEqual(publishes(w).map((p) => p.topic), ['wd/dying']);
    await advance(clock, 600_000);
    assert.equal(publishes(w).length, 1, 'published once');
  });
});

test('will delay: a reconnect within the delay cancels the will', async () => {
  await withClock(async (broker, clock) => {
    const w = await watcher(broker, clock, 'wc/#');
    const first = await connected(broker, 5, { clientId: 'back', clean: false, will: will('wc/back', 30), properties: { sessionExpiryInterval: 120 } }, clock.now());
    first.ch.transportClosed();
    await advance(clock, 29_000);
    await connected(broker, 5, { clientId: 'back', clean: false, properties: { sessionExpiryInterval: 120 } }, clock.now());
    await advance(clock, 600_000);
    assert.deepEqual(publishes(w), [], 'the reconnect cancelled the will');
  });
});

test('will delay longer than the session expiry: the will comes when the session ends, and the session is removed', async () => {
  await withClock(async (broker, clock) => {
    const w = await watcher(broker, clock, 'we/#');
    const { ch } = await connected(broker, 5, { clientId: 'short', clean: false, will: will('we/short', 60), properties: { sessionExpiryInterval: 10 } }, clock.now());
    ch.transportClosed();
    await advance(clock, 9_999);
    assert.deepEqual(publishes(w), []);
    assert.ok(broker.sessions.has('short'));
    await advance(clock, 1);
    assert.deepEqual(publishes(w).map((p) => p.topic), ['we/short'], 'at the session expiry, not at the 60 s delay');
    await advance(clock, 1_000); // the expiry sweep runs every second
    assert.equal(broker.sessions.has('short'), false);
  });
});

test('session expiry: an offline session and its queue live until the interval ends, then are gone', async () => {
  await withClock(async (broker, clock) => {
    const { ch } = await connected(broker, 5, { clientId: 'exp', clean: false, properties: { sessionExpiryInterval: 5 } }, clock.now());
    ch.receive(enc({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'se/x', qos: 1 }] }, 5), clock.now());
    await settle();
    ch.receive(enc({ cmd: 'disconnect' }, 5), clock.now());
    const { ch: pub } = await connected(broker, 5, { clientId: 'se-pub' }, clock.now());
    pub.receive(enc({ cmd: 'publish', topic: 'se/x', payload: Buffer.from('q'), qos: 1, dup: false, retain: false, messageId: 1 }, 5), clock.now());
    await settle();
    await advance(clock, 4_999);
    assert.ok(broker.sessions.has('exp'), 'still there 1 ms before its expiry');
    const expiredBefore = broker.stats.sessionsExpired;
    await advance(clock, 1_001);
    assert.equal(broker.sessions.has('exp'), false);
    assert.equal(broker.stats.sessionsExpired, expiredBefore + 1);
    const again = await connected(broker, 5, { clientId: 'exp', clean: false, properties: { sessionExpiryInterval: 5 } }, clock.now());
    const [connack] = again.t.packets(5);
    assert.ok(connack.cmd === 'connack' && connack.sessionPresent === false);
    assert.deepEqual(publishes(again.t), [], 'the queued message went with the session');
  });
});

test('message expiry: a queued message is delivered with the time it has left, and dropped once it has none', async () => {
  await withClock(async (broker, clock) => {
    const props = { sessionExpiryInterval: 600 };
    const sub = await connected(broker, 5, { clientId: 'me-sub', clean: false, properties: props }, clock.now());
    sub.ch.receive(enc({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'me/#', qos: 1 }] }, 5), clock.now());
    await settle();
    sub.ch.receive(enc({ cmd: 'disconnect' }, 5), clock.now());
    const { ch: pub } = await connected(broker, 5, { clientId: 'me-pub' }, clock.now());
    const send = (topic: string, seconds: number, messageId: number) =>
      pub.receive(enc({ cmd: 'publish', topic, payload: Buffer.from(topic), qos: 1, dup: false, retain: false, messageId, properties: { messageExpiryInterval: seconds } }, 5), clock.now());
    send('me/long', 10, 1);
    send('me/short', 4, 2);
    await settle();
    const droppedBefore = broker.stats.messagesDroppedExpired;
    await advance(clock, 4_000);
    const back = await connected(broker, 5, { clientId: 'me-sub', clean: false, properties: props }, clock.now());
    await settle();
    const got = publishes(back.t);
    assert.deepEqual(got.map((p) => p.topic), ['me/long'], 'the 4 s message expired at 4 s');
    assert.equal(got[0].properties?.messageExpiryInterval, 6, '10 s minus the 4 s it waited');
    assert.equal(broker.stats.messagesDroppedExpired, droppedBefore + 1);
  });
});

test('message expiry: a retained message is served until it expires, then not', async () => {
  await withClock(async (broker, clock) => {
    const { ch: pub } = await connected(broker, 5, { clientId: 're-pub' }, clock.now());
    pub.receive(enc({ cmd: 'publish', topic: 're/x', payload: Buffer.from('r'), qos: 1, dup: false, retain: true, messageId: 1, properties: { messageExpiryInterval: 5 } }, 5), clock.now());
    await settle();
    await advance(clock, 4_999);
    const before = await watcher(broker, clock, 're/#');
    assert.deepEqual(publishes(before).map((p) => p.topic), ['re/x']);
    await advance(clock, 1);
    const after = await watcher(broker, clock, 're/+');
    assert.deepEqual(publishes(after), [], 'expired at 5 s');
  });
});

test('keep alive on the broker clock: 1.5 × keep alive of silence closes the connection and publishes the will', async () => {
  await withClock(async (broker, clock) => {
    const w = await watcher(broker, clock, 'ka/#');
    const { ch, t } = await connected(broker, 4, { clientId: 'ka', keepalive: 10, will: { topic: 'ka/w', payload: Buffer.from('x'), qos: 0, retain: false } }, clock.now());
    await advance(clock, 15_000);
    ch.tick(clock.now());
    assert.equal(t.closed, false, '1.5 × keep alive exactly is still alive');
    await advance(clock, 1);
    ch.tick(clock.now());
    assert.equal(t.closed, true);
    await settle();
    assert.deepEqual(publishes(w).map((p) => p.topic), ['ka/w']);
  });
});
