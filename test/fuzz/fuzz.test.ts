// Fuzz (G10): random bytes and mutated valid packets, (1) straight into the decoder, which must
// only ever throw MqttError, and (2) from many short-lived sockets into a running broker while a
// well-behaved client keeps publishing and receiving: the broker stays up and the good client
// gets every message. The seed is printed; FUZZ_SEED=<n> repeats a run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { PacketDecoder } from '../../src/protocol/codec';
import { MqttError } from '../../src/protocol/errors';
import type { ProtocolVersion } from '../../src/protocol/packets';
import { collect, connect, endClient, startTestBroker } from '../helpers';
import { waitUntil } from '../guarantees/wait';
import { Rand, connectPacket, enc, fuzzSeed, mutate, prng, validPackets } from './corpus';

const VERSIONS: ProtocolVersion[] = [3, 4, 5];
// `npm run fuzz` (scripts/fuzz.js) runs the same tests with a million decoder cases and tens of
// thousands of network cases, bounded by FUZZ_TIME_MS; `npm test` runs the small default.
const DECODER_CASES = Number(process.env.FUZZ_DECODER_CASES ?? 20_000);
const NETWORK_CASES = Number(process.env.FUZZ_NETWORK_CASES ?? 2000);
/** Each of the two tests stops drawing new cases after this long (0: no bound but the counts). */
const TIME_BUDGET_MS = Number(process.env.FUZZ_TIME_MS ?? 0);
const PARALLEL = 40;
const outOfTime = (startedAt: number): boolean => TIME_BUDGET_MS > 0 && Date.now() - startedAt > TIME_BUDGET_MS;

test('fuzz: the decoder only ever throws MqttError', () => {
  const seed = fuzzSeed();
  console.log(`# decoder fuzz seed ${seed} (FUZZ_SEED=${seed} to repeat)`);
  const rand = new Rand(prng(seed));
  const corpus = VERSIONS.map((v) => validPackets(v).map((p) => enc(p, v)));
  const kinds = new Map<string, number>();
  let thrown = 0;
  let cases = 0;
  let bytesFed = 0;
  const startedAt = Date.now();
  for (let i = 0; i < DECODER_CASES && !(i % 1000 === 0 && outOfTime(startedAt)); i++) {
    cases++;
    const vi = rand.int(VERSIONS.length);
    const version = VERSIONS[vi];
    const decoder = new PacketDecoder(rand.pick([256, 4096, 1024 * 1024]));
    const { kind, bytes } = mutate(rand, rand.pick(corpus[vi]));
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    bytesFed += bytes.length;
    try {
      // Half the cases are decoded after a valid CONNECT, so the decoder knows the protocol version.
      if (rand.int(2) === 0) decoder.push(enc(connectPacket(version, 'c'), version));
      // Fed in random chunks, as a socket would deliver them.
      let at = 0;
      while (at < bytes.length) {
        const n = 1 + rand.int(bytes.length - at);
        decoder.push(bytes.subarray(at, at + n));
        at += n;
      }
    } catch (e) {
      thrown++;
      if (!(e instanceof MqttError)) {
        assert.fail(`case ${i} (seed ${seed}, ${kind}, v${version}, bytes ${bytes.toString('hex')}): threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
      }
      assert.ok([0x81, 0x84, 0x95].includes(e.reasonCode), `reason code 0x${e.reasonCode.toString(16)}`);
    }
  }
  const seconds = (Date.now() - startedAt) / 1000;
  console.log(
    `# decoder fuzz: ${cases} cases (${(bytesFed / 2 ** 20).toFixed(1)} MiB) in ${seconds.toFixed(1)} s, ${thrown} refused, by kind ${JSON.stringify(Object.fromEntries(kinds))}`,
  );
  assert.ok(thrown > cases / 10, 'the mutations do produce bad input');
});

/** Sends one case on its own socket and waits (bounded) until the broker closes it or it goes quiet. */
function sendCase(port: number, chunks: Buffer[]): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(done, 200);
    socket.on('error', done);
    socket.on('close', done);
    socket.on('data', () => undefined);
    socket.on('connect', () => {
      for (const c of chunks) socket.write(c);
    });
  });
}

test(`fuzz: ${NETWORK_CASES} bad-input connections against a running broker; it stays up and a good client gets every message`, async () => {
  const seed = fuzzSeed();
  console.log(`# network fuzz seed ${seed} (FUZZ_SEED=${seed} to repeat)`);
  const rand = new Rand(prng(seed));
  const b = await startTestBroker({ maxPacketSize: 64 * 1024, connectTimeoutMs: 500 });
  const sub = await connect(b.port, { protocolVersion: 5, clientId: 'fuzz-good-sub', clean: false, properties: { sessionExpiryInterval: 60 } });
  const pub = await connect(b.port, { protocolVersion: 4, clientId: 'fuzz-good-pub' });
  try {
    const got = collect(sub);
    await sub.subscribeAsync('good/#', { qos: 1 });
    let published = 0;
    let fuzzing = true;
    const good = (async () => {
      while (fuzzing || published < 50) await pub.publishAsync('good/t', String(++published), { qos: (published % 2) as 0 | 1 });
    })();

    // Every case is drawn up front, so a seed reproduces the same cases whatever the socket timing.
    const corpus = VERSIONS.map((v) => validPackets(v).map((p) => enc(p, v)));
    const kinds = new Map<string, number>();
    const cases: Buffer[][] = [];
    for (let i = 0; i < NETWORK_CASES; i++) {
      const vi = rand.int(VERSIONS.length);
      const version = VERSIONS[vi];
      const chunks: Buffer[] = [];
      // Most cases start with a valid CONNECT (fresh client id), so the bytes reach the handlers.
      if (rand.int(4) !== 0) chunks.push(enc(connectPacket(version, `fuzz-${i}`), version));
      if (rand.int(3) === 0) {
        // A sequence of valid packets in random order (acks for unknown ids, PUBREL first, ...), the last one mutated.
        kinds.set('sequence', (kinds.get('sequence') ?? 0) + 1);
        for (let k = rand.int(6); k > 0; k--) chunks.push(rand.pick(corpus[vi]));
        chunks.push(mutate(rand, rand.pick(corpus[vi])).bytes);
      } else {
        const { kind, bytes } = mutate(rand, rand.pick(corpus[vi]));
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
        chunks.push(bytes);
      }
      cases.push(chunks);
    }
    let next = 0;
    const startedAt = Date.now();
    const worker = async () => {
      while (next < cases.length && !outOfTime(startedAt)) await sendCase(b.port, cases[next++]);
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    fuzzing = false;
    await good;
    const packets = cases.slice(0, next).reduce((n, chunks) => n + chunks.length, 0);
    console.log(
      `# network fuzz: ${next} connections, ${packets} packets in ${((Date.now() - startedAt) / 1000).toFixed(1)} s, by kind ${JSON.stringify(Object.fromEntries(kinds))}, ` +
        `malformed counted ${b.broker.stats.malformedPackets}; the good client published ${published}`,
    );

    // The good client got every QoS 1 message, and every QoS 0 one (nothing was slow or lost).
    await waitUntil(() => got.messages.length >= published, 'the good client to receive all its messages', 10_000);
    const payloads = got.messages.map((m) => Number(m.payload.toString()));
    const expected = Array.from({ length: published }, (_, k) => k + 1);
    assert.deepEqual([...new Set(payloads)].sort((x, y) => x - y), expected);

    // And the broker still accepts new clients.
    const after = await connect(b.port, { protocolVersion: 5, clientId: 'fuzz-after' });
    await after.publishAsync('good/after', 'still-up', { qos: 1 });
    await endClient(after);
    await got.waitFor(published + 1);
    assert.ok(b.broker.stats.malformedPackets > 100, 'the fuzz reached the decoder');
  } finally {
    await endClient(pub, true);
    await endClient(sub, true);
    await b.stop();
  }
  // The state the fuzz left in the store loads again: the good client's session is there, intact.
  const again = await startTestBroker({ dataDir: b.config.dataDir });
  try {
    const session = again.broker.sessions.get('fuzz-good-sub');
    assert.ok(session, 'the persistent session survived');
    assert.deepEqual([...session.subscriptions.keys()], ['good/#']);
    const c = await connect(again.port, { protocolVersion: 5, clientId: 'fuzz-good-sub', clean: false, properties: { sessionExpiryInterval: 60 } });
    const got = collect(c);
    await c.publishAsync('good/again', 'after-restart', { qos: 1 });
    await got.waitFor(1);
    await endClient(c);
  } finally {
    await again.stop();
  }
});
