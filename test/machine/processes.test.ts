// Two worker processes on one machine (`--processes 2`), real sockets and clients: messages at
// QoS 0/1/2 across the workers, a subscription seen by the other worker before its SUBACK (G6),
// takeover across workers, retained messages, and mosquitto's clients.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IDisconnectPacket } from 'mqtt';
import { collect, connect, endClient, runClient, skipWithout, sleep } from '../helpers';
import { waitUntil } from '../guarantees/wait';
import { TestMachine } from './workers';

let machine: TestMachine;

before(async () => {
  machine = await TestMachine.start(2);
});

after(async () => {
  await machine?.stop();
});

test('two processes: QoS 0, 1 and 2 published on each worker reach subscribers on both, once each and in order', async () => {
  const subs = [
    await machine.connectOn(0, { clientId: 'x-sub-0', protocolVersion: 5 }),
    await machine.connectOn(1, { clientId: 'x-sub-1', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } }),
  ];
  const got = subs.map((s) => collect(s));
  for (const s of subs) await s.subscribeAsync('x/#', { qos: 2 });
  const pubs = [await machine.connectOn(0, { clientId: 'x-pub-0' }), await machine.connectOn(1, { clientId: 'x-pub-1', protocolVersion: 5 })];
  const sent: string[][] = [[], []];
  for (let n = 0; n < 30; n++) {
    for (const i of [0, 1]) {
      const payload = `w${i}-${n}`;
      sent[i]!.push(payload);
      await pubs[i]!.publishAsync(`x/${i}`, payload, { qos: (n % 3) as 0 | 1 | 2 });
    }
  }
  for (const g of got) await g.waitFor(60, 10_000);
  for (const [s, g] of got.entries()) {
    for (const i of [0, 1]) {
      const fromPub = g.arrived.filter((p) => p.topic === `x/${i}`).map((p) => p.payload.toString());
      assert.deepEqual(fromPub, sent[i], `subscriber on worker ${s}, publisher on worker ${i}`);
    }
  }
  assert.equal(await machine.workerOf('x-sub-0'), 0);
  assert.equal(await machine.workerOf('x-sub-1'), 1);
  await Promise.all([...subs, ...pubs].map((c) => endClient(c)));
});

// A burst arrives in one read, so one batch and one frame to the other worker carry stored and
// unstored deliveries for the same session, in publish order.
test('two processes: a burst of mixed QoS from one worker reaches a persistent subscriber on the other in publish order', async () => {
  const subscriber = await machine.connectOn(1, { clientId: 'burst-sub', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } });
  const got = collect(subscriber);
  await subscriber.subscribeAsync('burst/#', { qos: 2 });
  const publisher = await machine.connectOn(0, { clientId: 'burst-pub', protocolVersion: 5 });
  const sent = Array.from({ length: 90 }, (_, n) => `b${n}`);
  await Promise.all(sent.map((payload, n) => publisher.publishAsync('burst/t', payload, { qos: (n % 3) as 0 | 1 | 2 })));
  await got.waitFor(sent.length, 10_000);
  assert.deepEqual(got.arrived.map((p) => p.payload.toString()), sent);
  await Promise.all([subscriber, publisher].map((c) => endClient(c, true)));
});

test('two processes: a subscription made on one worker is used by the other as soon as its SUBACK is sent (G6)', async () => {
  const publisher = await machine.connectOn(1, { clientId: 'g6-pub' });
  const subscriber = await machine.connectOn(0, { clientId: 'g6-sub', protocolVersion: 5 });
  const got = collect(subscriber);
  for (let n = 0; n < 25; n++) {
    await subscriber.subscribeAsync(`g6/${n}`, { qos: 1 });
    await publisher.publishAsync(`g6/${n}`, `m${n}`, { qos: 1 });
  }
  const messages = await got.waitFor(25, 10_000);
  assert.deepEqual(messages.map((m) => m.payload.toString()), Array.from({ length: 25 }, (_, n) => `m${n}`));
  await Promise.all([publisher, subscriber].map((c) => endClient(c)));
});

test('two processes: a client connecting on the other worker takes its session over (DISCONNECT 0x8E), and its queue moves with it', async () => {
  const options = { clientId: 'move-me', protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 600 } };
  const first = await machine.connectOn(0, options);
  await first.subscribeAsync('move/#', { qos: 1 });
  let disconnect: IDisconnectPacket | undefined;
  first.on('disconnect', (packet) => (disconnect = packet));
  const publisher = await machine.connectOn(0, { clientId: 'move-pub' });
  const second = await machine.connectOn(1, options);
  await waitUntil(() => disconnect !== undefined, 'DISCONNECT to the first connection');
  assert.equal(disconnect!.reasonCode, 0x8e);
  const got = collect(second);
  // Queued while the session is held offline by worker 1, then resumed on worker 0.
  await endClient(second);
  for (let n = 0; n < 10; n++) await publisher.publishAsync('move/a', `q${n}`, { qos: 1 });
  let resumed: ReturnType<typeof collect> | undefined;
  const third = await machine.connectOn(0, options, (c) => (resumed = collect(c)));
  await publisher.publishAsync('move/a', 'live', { qos: 1 });
  const messages = await resumed!.waitFor(11, 10_000);
  assert.deepEqual(messages.map((m) => m.payload.toString()), [...Array.from({ length: 10 }, (_, n) => `q${n}`), 'live']);
  assert.equal(got.messages.length, 0);
  await Promise.all([first, third, publisher].map((c) => endClient(c, true)));
});

test('two processes: a client connecting on the other worker publishes the old connection\'s will (no delay) once, as one process does', async () => {
  const watcher = await machine.connectOn(1, { clientId: 'tw-watch', protocolVersion: 5 });
  const wills = collect(watcher);
  await watcher.subscribeAsync('tw-will/#', { qos: 1 });
  // The new connection must land on the other worker at its first try: a try on the same worker
  // would be a takeover there (which publishes the will too) and prove nothing about the link.
  let crossed = false;
  let attempt = 0;
  for (; attempt < 5 && !crossed; attempt++) {
    const clientId = `tw-owner-${attempt}`;
    const first = await machine.connectOn(0, { clientId, protocolVersion: 5, will: { topic: `tw-will/${attempt}`, payload: Buffer.from(`bye-${attempt}`), qos: 1, retain: false } });
    first.on('error', () => undefined);
    await machine.nextGoesTo(1);
    const second = await connect(machine.port, { clientId, protocolVersion: 5 });
    crossed = (await machine.workerOf(clientId)) === 1;
    await Promise.all([first, second].map((c) => endClient(c, true)));
  }
  assert.ok(crossed, 'the second connection never landed on the other worker at its first try');
  const expected = `bye-${attempt - 1}`;
  await waitUntil(() => wills.messages.some((m) => m.payload.toString() === expected), `the will ${expected}`);
  await watcher.publishAsync('tw-will/marker', 'marker', { qos: 1 });
  await waitUntil(() => wills.messages.some((m) => m.payload.toString() === 'marker'), 'the marker after the will');
  assert.equal(wills.messages.filter((m) => m.payload.toString() === expected).length, 1, `the will ${expected} once`);
  await endClient(watcher);
});

test('two processes: a retained message set on one worker is served by the other, and cleared everywhere', async () => {
  const setter = await machine.connectOn(0, { clientId: 'ret-set' });
  await setter.publishAsync('ret/one', 'kept', { qos: 1, retain: true });
  const reader = await machine.connectOn(1, { clientId: 'ret-read' });
  const got = collect(reader);
  await reader.subscribeAsync('ret/#', { qos: 1 });
  const [message] = await got.waitFor(1);
  assert.equal(message!.payload.toString(), 'kept');
  assert.equal(message!.packet.retain, true);
  await reader.publishAsync('ret/one', '', { qos: 1, retain: true }); // cleared on worker 1
  const late = await machine.connectOn(0, { clientId: 'ret-late' });
  const lateGot = collect(late);
  await late.subscribeAsync('ret/#', { qos: 1 });
  await setter.publishAsync('ret/marker', 'marker', { qos: 1, retain: true });
  const seen = await lateGot.waitFor(1);
  assert.deepEqual(seen.map((m) => m.payload.toString()), ['marker'], 'the cleared message must not come back on worker 0');
  await Promise.all([setter, reader, late].map((c) => endClient(c)));
});

test('two processes: /metrics on either worker is the whole machine\'s: counters summed, gauges every worker shares not', async () => {
  const clients = [await machine.connectOn(0, { clientId: 'met-0' }), await machine.connectOn(1, { clientId: 'met-1' })];
  for (const [i, client] of clients.entries()) {
    for (let n = 0; n <= i; n++) await client.publishAsync(`met/${i}/${n}`, 'r', { qos: 1, retain: true });
  }
  const own = [await machine.metrics(0, '/metrics/worker'), await machine.metrics(1, '/metrics/worker')];
  const whole = [await machine.metrics(0, '/metrics'), await machine.metrics(1, '/metrics')];
  // Counters that only move when a client connects or publishes (not when a closed probe connection is noticed).
  for (const name of ['iotbridge_messages_received_total', 'iotbridge_connections_total']) {
    const sum = own[0]!.get(name)! + own[1]!.get(name)!;
    assert.ok(own[0]!.get(name)! > 0 && own[1]!.get(name)! > 0, `${name} moved on both workers`);
    for (const [slot, metrics] of whole.entries()) assert.equal(metrics.get(name), sum, `${name} on worker ${slot}'s /metrics`);
  }
  for (const name of ['iotbridge_retained_messages', 'iotbridge_subscriptions']) {
    for (const [slot, metrics] of whole.entries()) assert.equal(metrics.get(name), Math.max(own[0]!.get(name)!, own[1]!.get(name)!), `${name} on worker ${slot}'s /metrics`);
  }
  assert.ok(own[0]!.get('iotbridge_retained_messages')! >= 3, 'both workers know the retained messages set on either');
  assert.equal(whole[0]!.get('iotbridge_worker_processes'), 2);
  assert.equal(own[1]!.get('iotbridge_worker_processes'), 1);
  await Promise.all(clients.map((c) => endClient(c)));
});

test('two processes: mosquitto_sub on one worker gets what mosquitto_pub sends through either', { skip: skipWithout(['mosquitto_pub', 'mosquitto_sub']) }, async () => {
  const watcher = await machine.connectOn(0, { clientId: 'mq-watch' });
  const watched = collect(watcher);
  await watcher.subscribeAsync('mq/#', { qos: 2 });
  const sub = runClient('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(machine.port), '-t', 'mq/#', '-q', '2', '-C', '6', '-W', '20', '-i', 'mq-sub']);
  for (let tries = 0; tries < 100 && !(await machine.sessionOf('mq-sub'))?.subscriptions.length; tries++) await sleep(50);
  assert.ok((await machine.sessionOf('mq-sub'))?.subscriptions.length, 'mosquitto_sub never subscribed');
  // mosquitto_sub lands on one worker; six publishes from alternating connections land on both.
  for (let n = 0; n < 6; n++) {
    const r = await runClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(machine.port), '-t', `mq/${n}`, '-m', `p${n}`, '-q', String(n % 3)]);
    assert.equal(r.status, 0, r.stderr);
  }
  const result = await sub;
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(result.stdout.trim().split('\n').sort(), ['p0', 'p1', 'p2', 'p3', 'p4', 'p5']);
  assert.equal((await watched.waitFor(6)).length, 6);
  await endClient(watcher);
});
