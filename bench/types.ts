// Shared types of the benchmark harness (orchestrator <-> generator <-> report).

export type QoS = 0 | 1 | 2;
export type Scenario = 'p2p' | 'fanout' | 'fanin' | 'connect' | 'latency';

/** One case as the generator runs it. Every loop it drives is bounded by a count and a time. */
export interface CaseSpec {
  /** Stable id, e.g. `p2p-qos1-64B`; used as the row key in the report. */
  id: string;
  scenario: Scenario;
  qos: QoS;
  payloadBytes: number;
  publishers: number;
  subscribers: number;
  /** Max messages outstanding per publisher (sent, and not yet acked by the broker and received by every subscriber). */
  window: number;
  /** Steady send rate per publisher in msg/s, or 0 for "as fast as the window allows". */
  ratePerPublisher: number;
  warmupMs: number;
  measureMs: number;
  /** Upper bound on the wait for outstanding messages after publishing stopped. */
  drainMs: number;
  /** The drain also ends after this long without a delivery or ack (default 3000 ms). */
  drainIdleMs?: number;
  /** Count bound: a publisher never sends more than this many messages. */
  maxMessagesPerPublisher: number;
  /** A message that has not reached all its subscribers after this long stops holding a window slot. */
  stallMs: number;
  /** Upper bound on connecting + subscribing all clients. */
  setupTimeoutMs: number;
  /** Concurrent CONNECT handshakes in flight while setting up. */
  connectConcurrency: number;
  /** Acks are batched per connection for this long (ms) before being written; 0 writes each at once. */
  ackBatchMs: number;
  /** Connect case only: number of connections to open. */
  connections: number;
  /** Publishers and subscribers connect with clean session 0: every delivery is stored (the durable path). */
  persistent?: boolean;
  /** One step of a rate sweep (fan-in): the steps of a group run in increasing rate until one is not sustained. */
  sweep?: { group: string; offeredPerSec: number };
  /** Runs of the case per broker (each with a fresh broker); the run with the median p99 is the result. */
  repeats?: number;
}

/** A sweep step's verdict: sustained when it passed its checks, p99 ≤ the bound and nothing was left behind. */
export interface SweepVerdict {
  group: string;
  offeredPerSec: number;
  sustained: boolean;
  /** Why not, when not. */
  why?: string;
  /** Why its first run missed, when it was sustained only on its confirmation run. */
  firstRunMissed?: string;
}

export interface LatencyStats {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface Correctness {
  /** Messages the subscribers should have received (publisher sends x matching subscribers). */
  expected: number;
  /** Distinct messages received. */
  received: number;
  lost: number;
  duplicates: number;
  outOfOrder: number;
  /** Messages for a publisher/subscriber pair that should not have met. */
  unexpected: number;
  /** Rule breaches: QoS 1/2 lost > 0, QoS 2 duplicates > 0, unexpected > 0, setup failures. */
  violations: string[];
}

/** What the generator reports for one case. */
export interface GeneratorResult {
  caseId: string;
  scenario: Scenario;
  qos: QoS;
  payloadBytes: number;
  publishers: number;
  subscribers: number;
  /** Measured window actually used (ms). */
  measuredMs: number;
  /** Messages published during the measured window. */
  publishedInWindow: number;
  /** Messages delivered to subscribers during the measured window. */
  deliveredInWindow: number;
  /** deliveredInWindow per second: the throughput figure of message cases. */
  deliveredPerSec: number;
  publishedPerSec: number;
  /** For rate-driven cases: the rate the generator offered in total (msg/s). */
  offeredPerSec: number;
  totalPublished: number;
  /** Messages whose window slot was freed by the stall timeout instead of by delivery. */
  stalled: number;
  drainMs: number;
  drainedFully: boolean;
  latency: LatencyStats;
  correctness: Correctness;
  /** Generator CPU (user+sys) during the measured window, % of one core. */
  generatorCpuPct: number;
  connect?: {
    attempted: number;
    connected: number;
    failed: number;
    elapsedMs: number;
    perSec: number;
  };
  errors: string[];
}

/** Messages from the generator worker to the orchestrator (IPC). */
export type WorkerToParent =
  | { type: 'measure-start' }
  | { type: 'measure-end' }
  | { type: 'connected'; connected: number }
  | { type: 'log'; msg: string }
  | { type: 'result'; result: GeneratorResult }
  | { type: 'fatal'; error: string };

/** Messages from the orchestrator to the generator worker. */
export type ParentToWorker =
  | { type: 'run'; spec: CaseSpec; host: string; port: number }
  | { type: 'release' };

/** One line of bench/results/<timestamp>.jsonl. */
export interface ResultLine {
  runId: string;
  time: string;
  quick: boolean;
  host: { cpus: number; cpuModel: string; node: string; brokerCore: string; generatorCore: string };
  broker: string;
  brokerLabel: string;
  brokerVersion: string;
  caseId: string;
  scenario: Scenario;
  qos: QoS;
  payloadBytes: number;
  skipped?: string;
  /** Attempts made (a contended case is retried, see --retries). */
  attempts?: number;
  /** The main figure: msg/s delivered (message cases), connections/s (connect). */
  throughput: number;
  throughputUnit: 'msg/s' | 'conn/s';
  generator?: GeneratorResult;
  brokerStats?: {
    /** Broker CPU (user+sys of the started process and all its descendants) during the measured window, % of one core. */
    cpuPct: number;
    /** The same as CPU seconds, and the window it was measured over (ms); absent in older results. */
    cpuSeconds?: number;
    windowMs?: number;
    /** The part of cpuPct spent in the kernel (stime), % of one core; absent in older results. */
    kernelCpuPct?: number;
    /** Processes in the broker's tree at the end of the window (a primary and its workers). */
    processes?: number;
    /** With several processes: the CPU of each in the window, % of one core, the started one (the primary) first. */
    cpuPctByProcess?: number[];
    /** Whole-core busy % (all processes, softirq included) of the broker's and generator's cores in the window. */
    brokerCoreBusyPct: number;
    generatorCoreBusyPct: number;
    /** CPU used by every other process on the machine during the window, % of one core (contention indicator). */
    othersCpuPct: number;
    /** The biggest other users, e.g. "java 80%". */
    othersTop?: string[];
    /** SYNs dropped on full accept queues during the case (system-wide TcpExt ListenOverflows). */
    listenOverflows: number;
    /** VmRSS summed over the broker's process tree. */
    rssStartKiB: number;
    rssPeakKiB: number;
    rssEndKiB: number;
    /** Connect case: (RSS with all connections open - RSS before) / connections. */
    rssPerConnKiB?: number;
    rssConnectedKiB?: number;
    exitCode: number | null;
    exitSignal: string | null;
  };
  /** Sweep steps only. */
  sweep?: SweepVerdict;
  /** A case run several times (CaseSpec.repeats): the latency of every run, in order; the line is the median one by p99. */
  runs?: { p50Ms: number; p99Ms: number; maxMs: number }[];
  ok: boolean;
  errors: string[];
}
