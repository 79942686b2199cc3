// kill -9 of one worker of two (`--processes 2`) while a publisher on the other keeps publishing
// QoS 1 to a persistent subscriber the killed worker held: nothing acknowledged is lost, the will
// of a client of the killed worker is published once, the primary starts the worker again, and
// the subscriber resumes its session.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { collect, connect, endClient } from '../helpers';
import { waitUntil } from '../guarantees/wait';
import { TestMachine } from './workers';

let machine: TestMachine;

before(async () => {
  machine = await TestMachine.start(2);
});

after(async () => {
  await machine?.stop();
});

test('two processes: kill -9 of a worker loses nothing acknowledged, publishes its clients\' wills once, and its sessions resume', async () => {
  const subscriberOptions = { clientId: 'crash-sub', protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 600 } };
  const subscriber = await machine.connectOn(0, subscriberOptions);
  await subscriber.subscribeAsync('crash/#', { qos: 1 });
  const before = collect(subscriber);
  const willing = await machine.connectOn(0, { clientId: 'crash-will', protocolVersion: 5, will: { topic: 'crash-will/gone', payload: Buffer.from('bye'), qos: 1, retain: false } });
  willing.on('error', () => undefined);
  subscriber.on('error', () => undefined);
  const watcher = await machine.connectOn(1, { clientId: 'crash-watch', protocolVersion: 5 });
  const wills = collect(watcher);
  await watcher.subscribeAsync('crash-will/#', { qos: 1 });
  const publisher = await machine.connectOn(1, { clientId: 'crash-pub', protocolVersion: 5 });

  const acked: string[] = [];
  const victim = machine.pidOf(0);
  for (let n = 0; n < 300; n++) {
    if (n === 100) process.kill(victim, 'SIGKILL');
    await publisher.publishAsync(`crash/${n % 7}`, `m${n}`, { qos: 1 });
    acked.push(`m${n}`);
  }
  assert.equal(acked.length, 300, 'the publisher on the surviving worker was acknowledged throughout');

  await waitUntil(() => machine.restarted(0), 'the primary to start worker 0 again', 20_000);
  const [will] = await wills.waitFor(1, 10_000);
  assert.equal(will!.payload.toString(), 'bye');

  let resumed: ReturnType<typeof collect> | undefined;
  const again = await connect(machine.port, subscriberOptions, (c) => (resumed = collect(c)));
  const seen = new Set(before.messages.map((m) => m.payload.toString()));
  await waitUntil(() => acked.every((p) => seen.has(p) || resumed!.messages.some((m) => m.payload.toString() === p)), 'every acknowledged message at the subscriber', 20_000);
  // What had not arrived before the kill comes in publish order (QoS 1 may repeat what was in flight then).
  const fresh = resumed!.messages.map((m) => m.payload.toString()).filter((p) => !seen.has(p)).map((p) => Number(p.slice(1)));
  assert.deepEqual(fresh, [...new Set(fresh)].sort((a, b) => a - b), 'in publish order, each once');

  // The will went out once: a marker published after it arrives with nothing between.
  await publisher.publishAsync('crash-will/marker', 'marker', { qos: 1 });
  await wills.waitFor(2);
  assert.deepEqual(wills.messages.map((m) => m.payload.toString()), ['bye', 'marker']);
  await Promise.all([again, watcher, publisher].map((c) => endClient(c, true)));
  await Promise.all([subscriber, willing].map((c) => endClient(c, true)));
});
