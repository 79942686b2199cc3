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
    let next = 1;
    let written = 0;
    /** Writes until the socket stops taking data for `stallMs` (the broker stopped reading), or all is written. */
    const writeUntilStalled = async (stallMs: number, deadline: number): Promise<void> => {
      while (next <= MESSAGES && Date.now() < deadline) {
        const frame = mqttPacket.generate({ cmd: 'publish', topic: `bp/${next % 10}`, payload, qos: 1, messageId: ((next - 1) % 65535) + 1, retain: false, dup: false });
        next++;
        written += frame.length;
        if (socket.write(frame)) continue;
        const drained = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), stallMs);
          socket.once('drain', () => (clearTimeout(timer), resolve(true)));
        });
        if (!drained) return;
      }
    };
    await writeUntilStalled(3000, Date.now() + 30_000);
    if (process.env.BP_DEBUG) process.stdout.write(`# held: written ${written} next ${next}\n`);
    const rssHeld = rssMiB(broker.child.pid!);
    const writtenWhileHeld = written;
    assert.ok(writtenWhileHeld < (MESSAGES * PAYLOAD) / 2, `the publisher could push ${(writtenWhileHeld / 2 ** 20).toFixed(1)} MiB into a broker whose store did not answer`);
    assert.ok(rssHeld - rssBefore < 40, `broker RSS grew by ${(rssHeld - rssBefore).toFixed(1)} MiB while the store stalled (${rssBefore.toFixed(0)} → ${rssHeld.toFixed(0)} MiB)`);
    assert.equal(pubacks(), 0, 'nothing acknowledged before it is stored');

    await broker.command('release');
    await writeUntilStalled(30_000, Date.now() + 120_000);
    if (process.env.BP_DEBUG) process.stdout.write(`# released: next ${next} pubacks ${pubacks()} received ${received.messages.length}\n`);
    assert.equal(next, MESSAGES + 1, 'everything written once the store answered');
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
