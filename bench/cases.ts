// The case matrix. The same cases run against every broker.
import type { CaseSpec, GeneratorResult, QoS, ResultLine, SweepVerdict } from './types';

/** Window of unacked messages per publisher in p2p and latency (also Mosquitto's max_inflight_messages). */
export const WINDOW = 64;

/** Offered rates (msg/s in total) of the fan-in sweep. */
export const FANIN_STEPS = [10_000, 20_000, 25_000, 30_000, 35_000, 40_000, 50_000];
export const FANIN_STEPS_QUICK = [10_000, 20_000, 25_000, 30_000, 40_000];

/** A sweep step is sustained with p99 at most this, end to end. */
export const SWEEP_P99_MS = 50;

/**
 * Whether a sweep step was sustained: its correctness checks passed, the subscriber got at least
 * 95 % of the offered rate in the window, p99 stayed within SWEEP_P99_MS, and nothing was left
 * behind (everything published was delivered within one second of publishing stopping).
 */
export function sweepVerdict(spec: CaseSpec, ok: boolean, gen: GeneratorResult | undefined): SweepVerdict | undefined {
  if (!spec.sweep) return undefined;
  const verdict = (why?: string): SweepVerdict => ({ ...spec.sweep!, sustained: why === undefined, ...(why ? { why } : {}) });
  if (!gen) return verdict('no result');
  if (!ok) return verdict('failed its correctness checks');
  const offered = spec.sweep.offeredPerSec;
  if (gen.deliveredPerSec < offered * 0.95) return verdict(`delivered ${gen.deliveredPerSec} of ${offered} msg/s offered`);
  if (gen.latency.p99Ms > SWEEP_P99_MS) return verdict(`p99 ${gen.latency.p99Ms.toFixed(1)} ms > ${SWEEP_P99_MS} ms`);
  if (!gen.drainedFully || gen.drainMs > 1000) return verdict(`left behind: ${gen.drainedFully ? `${gen.drainMs} ms` : 'not'} drained after publishing stopped`);
  return verdict();
}

/**
 * The result of a case run several times: a failed run if any (a failure is never hidden by
 * better runs), else the run with the median p99.
 */
export function medianRun(runs: ResultLine[]): ResultLine {
  const failed = runs.find((r) => !r.ok);
  if (failed || runs.length === 1) return failed ?? runs[0]!;
  const byP99 = [...runs].sort((a, b) => (a.generator?.latency.p99Ms ?? Infinity) - (b.generator?.latency.p99Ms ?? Infinity));
  return byP99[Math.floor((byP99.length - 1) / 2)]!;
}

export function buildCases(quick: boolean): CaseSpec[] {
  const t = quick
    ? { warmupMs: 300, measureMs: 1500, drainMs: 10_000, stallMs: 3000, setupTimeoutMs: 15_000 }
    : { warmupMs: 1000, measureMs: 5000, drainMs: 20_000, stallMs: 5000, setupTimeoutMs: 30_000 };
  const base = {
    ...t,
    publishers: 100,
    subscribers: 100,
    window: WINDOW,
    ratePerPublisher: 0,
    maxMessagesPerPublisher: 2_000_000,
    // 50 handshakes in flight: below every broker's accept backlog (Mosquitto listens with 100),
    // so no SYN is dropped and retried after 1 s; more in flight measured slower here, not faster.
    connectConcurrency: 50,
    connections: 0,
    // Acks are written at once; --ack-batch-ms batches them (no measurable gain here, so off by default).
    ackBatchMs: 0,
  };
  const cases: CaseSpec[] = [];
  const payloads = quick ? [64] : [64, 1024];
  for (const payloadBytes of payloads) {
    for (const qos of [0, 1, 2] as QoS[]) {
      cases.push({ ...base, id: `p2p-qos${qos}-${payloadBytes === 1024 ? '1KiB' : `${payloadBytes}B`}`, scenario: 'p2p', qos, payloadBytes });
    }
  }
  // The durable path: every publisher and subscriber on a persistent session, so each delivery is stored.
  for (const payloadBytes of payloads) {
    for (const qos of [1, 2] as QoS[]) {
      cases.push({ ...base, id: `p2p-persistent-qos${qos}-${payloadBytes === 1024 ? '1KiB' : `${payloadBytes}B`}`, scenario: 'p2p', qos, payloadBytes, persistent: true });
    }
  }
  for (const qos of (quick ? [1] : [0, 1]) as QoS[]) {
    cases.push({
      ...base,
      id: `fanout-qos${qos}-1000subs`,
      scenario: 'fanout',
      qos,
      payloadBytes: 64,
      publishers: 1,
      subscribers: 1000,
      window: 32,
      maxMessagesPerPublisher: 200_000,
    });
  }
  // Fan-in sweep: 1000 publishers at QoS 1 into one `bench/+/data` subscriber, at increasing
  // offered rates; a broker's sustainable rate is the highest step it sustained (sweepVerdict).
  for (const offered of quick ? FANIN_STEPS_QUICK : FANIN_STEPS) {
    cases.push({
      ...base,
      id: `fanin-sweep-${offered / 1000}k`,
      scenario: 'fanin',
      qos: 1,
      payloadBytes: 64,
      publishers: 1000,
      subscribers: 1,
      window: 8,
      ratePerPublisher: offered / 1000,
      // Node.js brokers need about a second from cold (JIT, the first PUBLISH of 1000 sessions)
      // before their latency is their steady state: a shorter warm-up measured 200 ms p99 at 10k.
      warmupMs: 1500,
      measureMs: quick ? 1500 : 3000,
      sweep: { group: 'fanin-sweep', offeredPerSec: offered },
    });
  }
  cases.push({
    ...base,
    id: quick ? 'connect-2000' : 'connect-10000',
    scenario: 'connect',
    qos: 0,
    payloadBytes: 0,
    publishers: 0,
    subscribers: 0,
    connections: quick ? 2000 : 10_000,
  });
  cases.push({
    ...base,
    id: 'latency-qos1-10k',
    scenario: 'latency',
    qos: 1,
    payloadBytes: 64,
    ratePerPublisher: 100,
    // One window's tail moved more between runs than between brokers (p99 2.7–11.7 ms for either of two
    // brokers in alternating runs): three runs each, and the median one counts.
    repeats: quick ? 1 : 3,
  });
  return cases;
}

/** Upper bound on one case's wall time, used as the orchestrator's hard timeout for the generator. */
export function caseBoundMs(s: CaseSpec): number {
  return s.setupTimeoutMs + s.warmupMs + s.measureMs + s.drainMs + 10_000;
}
