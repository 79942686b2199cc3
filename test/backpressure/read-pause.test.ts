// Read-side backpressure with a real socket, a real broker process and a store that stalls: an
// MQTT 3.1.1 publisher (no Receive Maximum) pipelines 64 MiB of QoS 1 PUBLISHes while the store
// does not answer. The broker stops reading from it, so its memory stays bounded (measured from
// outside, in /proc); when the store answers again every message is acknowledged and delivered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import mqttPacket from 'mqtt-packet';
import { collect, connect, endClient, tempDir } from '../helpers';
import { waitUntil } from '../guarantees/wait';
import { RawClient } from '../mqtt-helpers';

const MESSAGES = Number(process.env.BP_MESSAGES ?? 16_000);
const PAYLOAD = 4096; // 64 MiB in all

function rssMiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
}

/** QoS 1 PUBLISH frames 1..count on `prefix/0..9`, written to a socket as fast as it takes them. */
function publishFrames(version: 4 | 5, count: number, payload: Buffer, prefix: string) {
  return {
    next: 1,
    written: 0,
    /** Writes until the socket stops taking data for `stallMs` (the broker stopped reading), or all is written. */
    async writeUntilStalled(socket: NodeJS.WritableStream & { once(event: 'drain', fn: () => void): unknown }, stallMs: number, deadline: number): Promise<void> {
      while (this.next <= count && Date.now() < deadline) {
        const n = this.next++;
        const frame = mqttPacket.generate({ cmd: 'publish', topic: `${prefix}/${n % 10}`, payload, qos: 1, messageId: ((n - 1) % 65535) + 1, retain: false, dup: false }, { protocolVersion: version });
        this.written += frame.length;
        if (socket.write(frame)) continue;
        const drained = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), stallMs);
          socket.once('drain', () => (clearTimeout(timer), resolve(true)));
        });
        if (!drained) return;
      }
    },
  };
}

function startSlowBroker(): Promise<{ child: ChildProcess; port: number; command(line: string): Promise<void> }> {
  const script = path.join(__dirname, 'slow-store-broker.js');
  const child = spawn(process.execPath, [script, tempDir('iotb-bp-')], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
    for (const w of waiters.splice(0)) if (out.includes(w.text)) w.resolve();
      else waiters.push(w);
  });
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const waitFor = (text: string, ms: number): Promise<void> =>
    new Promise((resolve, reject) => {
      if (out.includes(text)) return resolve();
      const timer = setTimeout(() => reject(new Error(`no "${text}" within ${ms} ms:\n${out}`)), ms);
      waiters.push({ text, resolve: () => (clearTimeout(timer), resolve()) });
    });
  return waitFor('listening on', 15_000).then(() => ({
    child,
    port: Number(/listening on [^:]+:(\d+)/.exec(out)![1]),
    command: (line: string) => {
      child.stdin!.write(`${line}\n`);
      return waitFor(`ok ${line}`, 5000);
    },
  }));
}

test('backpressure: a 3.1.1 publisher pipelining 64 MiB of QoS 1 behind a stalled store is not read without bound; all of it arrives once the store answers', { timeout: 180_000 }, async () => {
  const broker = await startSlowBroker();
  const sub = await connect(broker.port, { clientId: 'bp-sub' });
  const received = collect(sub);
  // The PUBLISHes go straight to the socket: whether it takes more (write() and 'drain') is the measure.
  const { client: pub } = await RawClient.connect(broker.port, 4, { clientId: 'bp-pub' });
  const socket = pub.socket;
  const pubacks = () => pub.all('puback').length;
  try {
    await sub.subscribeAsync('bp/#', { qos: 1 });
    const rssBefore = rssMiB(broker.child.pid!);

    await broker.command('hold');
    const payload = Buffer.alloc(PAYLOAD, 7);
    const frames = publishFrames(4, MESSAGES, payload, 'bp');
    await frames.writeUntilStalled(socket, 3000, Date.now() + 30_000);
    const written = () => frames.written;
    const next = () => frames.next;
    const rssHeld = rssMiB(broker.child.pid!);
    const writtenWhileHeld = written();
    assert.ok(writtenWhileHeld < (MESSAGES * PAYLOAD) / 2, `the publisher could push ${(writtenWhileHeld / 2 ** 20).toFixed(1)} MiB into a broker whose store did not answer`);
    assert.ok(rssHeld - rssBefore < 40, `broker RSS grew by ${(rssHeld - rssBefore).toFixed(1)} MiB while the store stalled (${rssBefore.toFixed(0)} → ${rssHeld.toFixed(0)} MiB)`);
    assert.equal(pubacks(), 0, 'nothing acknowledged before it is stored');

    await broker.command('release');
    await frames.writeUntilStalled(socket, 30_000, Date.now() + 120_000);
    assert.equal(next(), MESSAGES + 1, 'everything written once the store answered');
    await waitUntil(() => pubacks() >= MESSAGES && received.messages.length >= MESSAGES, 'every PUBLISH acknowledged and delivered', 120_000).catch(
      () => undefined, // the assertions below say which is missing
    );
    assert.equal(pubacks(), MESSAGES, 'every PUBLISH acknowledged');
    assert.equal(received.messages.length, MESSAGES, 'every message delivered');
    process.stdout.write(
      `# backpressure: RSS ${rssBefore.toFixed(1)} MiB before, ${rssHeld.toFixed(1)} MiB with the store stalled after ${(writtenWhileHeld / 2 ** 20).toFixed(1)} MiB written; ${MESSAGES} acknowledged and delivered after\n`,
    );
  } finally {
    await pub.destroy(); // and fails the test if the broker wrote a malformed packet
    await endClient(sub, true);
    broker.child.kill('SIGKILL');
  }
});

test('backpressure: MQTT 5 publishers within Receive Maximum but with large messages are held by the bytes bound (maxPendingInboundBytes) behind a stalled store; all of it arrives once the store answers', { timeout: 180_000 }, async () => {
  const CLIENTS = 3;
  const PER_CLIENT = 500; // 64 KiB each: 31 MiB per client, under its Receive Maximum of 1024 messages
  const payload = Buffer.alloc(64 * 1024, 5);
  const broker = await startSlowBroker();
  const sub = await connect(broker.port, { clientId: 'bp5-sub', protocolVersion: 5 });
  const received = collect(sub);
  const pubs = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => RawClient.connect(broker.port, 5, { clientId: `bp5-pub-${i}` }).then((c) => c.client)));
  const frames = pubs.map(() => publishFrames(5, PER_CLIENT, payload, 'bp5'));
  const pubacks = () => pubs.reduce((n, p) => n + p.all('puback').length, 0);
  try {
    await sub.subscribeAsync('bp5/#', { qos: 1 });
    const rssBefore = rssMiB(broker.child.pid!);
    await broker.command('hold');
    await Promise.all(pubs.map((p, i) => frames[i]!.writeUntilStalled(p.socket, 3000, Date.now() + 30_000)));
    const rssHeld = rssMiB(broker.child.pid!);
    const writtenWhileHeldMiB = frames.reduce((n, f) => n + f.written, 0) / 2 ** 20;
    for (const f of frames) assert.ok(f.next <= PER_CLIENT, `a publisher pushed all of its ${PER_CLIENT} messages into a broker whose store did not answer`);
    // maxPendingInboundBytes (8 MiB) counts payload bytes; the read buffers and the stalled store batch hold
    // about as much again: twice it per connection, and slack for the heap.
    const boundMiB = CLIENTS * 16 + 40;
    assert.ok(rssHeld - rssBefore < boundMiB, `broker RSS grew by ${(rssHeld - rssBefore).toFixed(1)} MiB while the store stalled (bound ${boundMiB})`);
    assert.equal(pubacks(), 0, 'nothing acknowledged before it is stored');
    await broker.command('release');
    await Promise.all(pubs.map((p, i) => frames[i]!.writeUntilStalled(p.socket, 30_000, Date.now() + 120_000)));
    const total = CLIENTS * PER_CLIENT;
    await waitUntil(() => pubacks() >= total && received.messages.length >= total, 'every PUBLISH acknowledged and delivered', 120_000).catch(() => undefined);
    assert.equal(pubacks(), total, 'every PUBLISH acknowledged');
    assert.equal(received.messages.length, total, 'every message delivered');
    const heldMiB = frames.reduce((n, f) => n + f.written, 0) / 2 ** 20;
    process.stdout.write(
      `# backpressure (MQTT 5, ${CLIENTS} publishers of 64 KiB messages): RSS ${rssBefore.toFixed(1)} MiB before, ${rssHeld.toFixed(1)} MiB with the store stalled after ${writtenWhileHeldMiB.toFixed(1)} MiB written; ${total} acknowledged and delivered after (${heldMiB.toFixed(0)} MiB in all)\n`,
    );
  } finally {
    for (const p of pubs) await p.destroy();
    await endClient(sub, true);
    broker.child.kill('SIGKILL');
  }
});
