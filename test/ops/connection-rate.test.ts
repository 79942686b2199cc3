// maxConnectionsPerAddressPerSecond with real sockets from 127.0.0.1: a burst above the limit gets
// CONNACK 0x9F (3.1.1: code 3) for the extras while the admitted connections stay up, the refusals are
// counted in the metric and logged without flooding the log, and once the rate falls new connections
// get in again. The broker runs on a clock the test moves, so a burst is a burst however slow the
// machine, and a second passes when the test says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics } from '../../src/ops/admin';
import { RawClient } from '../mqtt-helpers';
import { ManualClock } from '../manual-clock';
import { connackOf, recordingLogger, withAuthBroker } from './auth-helpers';

const LIMIT = 3;
const BURST = 15;

/** Opens `BURST` sockets one after another (accepted, and so counted, in that order), then sends every CONNECT. */
async function burst(port: number, version: 4 | 5, prefix: string): Promise<{ clients: RawClient[]; codes: number[] }> {
  const clients: RawClient[] = [];
  for (let i = 0; i < BURST; i++) clients.push(await RawClient.open(port, version));
  const connacks = await Promise.all(clients.map((c, i) => c.sendConnect({ clientId: `${prefix}-${i}` })));
  return { clients, codes: connacks.map((c) => (version === 5 ? (c.reasonCode ?? 0) : (c.returnCode ?? 0))) };
}

async function rateLimitedMetric(running: Parameters<Parameters<typeof withAuthBroker>[1]>[1]): Promise<number> {
  const text = await createMetrics(running.broker).metrics();
  const m = /^iotbridge_connections_rate_limited_total (\d+)$/m.exec(text);
  assert.ok(m, 'the metric is exported');
  return Number(m[1]);
}

test('a burst of connections from one address past maxConnectionsPerAddressPerSecond: extras get 0x9F / 3, the others stay, counted, logged once in a while, and the address gets in again a second later', async () => {
  const lines: string[] = [];
  const clock = new ManualClock();
  const started = clock.now();
  let refusedTotal = 0;
  await withAuthBroker(
    { maxConnectionsPerAddressPerSecond: LIMIT },
    async (port, running) => {
      for (const [version, refusedCode] of [[5, 0x9f], [4, 3]] as const) {
        const countedBefore = running.broker.stats.connectionsRateLimited;
        const { clients, codes } = await burst(port, version, `burst-${version}`);
        // The clock stands still: a second's worth gets in, in the order the sockets were accepted.
        const expected = [...Array<number>(LIMIT).fill(0), ...Array<number>(BURST - LIMIT).fill(refusedCode)];
        assert.deepEqual(codes, expected, `MQTT ${version}`);
        const accepted = clients.slice(0, LIMIT);
        for (const c of clients.slice(LIMIT)) await c.waitClosed();
        for (const c of accepted) await c.ping(); // still connected and served
        assert.equal(running.broker.stats.connectionsRateLimited - countedBefore, BURST - LIMIT);
        assert.equal(await rateLimitedMetric(running), running.broker.stats.connectionsRateLimited);
        assert.equal(await connackOf(port, version, { clientId: `again-${version}-early` }), refusedCode, 'refused attempts took no token, and none came back');
        clock.advance(Math.ceil(1000 / LIMIT));
        assert.equal(await connackOf(port, version, { clientId: `again-${version}` }), 0, `MQTT ${version}: a token back after a third of a second`);
        for (const c of clients) await c.destroy();
        clock.advance(1000); // a quiet second refills the address's whole burst for the next round
      }
      refusedTotal = running.broker.stats.connectionsRateLimited;
    },
    recordingLogger(lines),
    clock,
  );
  const rateLines = lines.filter((l) => l.includes('too many new connections from one address'));
  assert.ok(rateLines.length >= 1, 'the refusals are logged');
  // One line per 10 s at most, whatever the number of refusals.
  assert.ok(rateLines.length <= 1 + Math.floor((clock.now() - started) / 10_000), `${rateLines.length} lines for ${refusedTotal} refusals`);
  const logged = rateLines.reduce((n, l) => n + (JSON.parse(l) as { refused: number }).refused, 0);
  assert.ok(logged <= refusedTotal);
});

test('maxConnectionsPerAddressPerSecond 0 (the default) limits nothing', async () => {
  await withAuthBroker({}, async (port, running) => {
    const { clients, codes } = await burst(port, 5, 'unlimited');
    assert.deepEqual(codes, Array(BURST).fill(0));
    for (const c of clients) await c.destroy();
    assert.equal(running.broker.stats.connectionsRateLimited, 0);
  });
});
