// The load generator: raw TCP sockets, mqtt-packet for parsing and control packets, hand-encoded
// PUBLISH/acks on the hot path. One process drives every publisher and subscriber of a case, so
// send and receive timestamps come from the same clock (performance.now()).
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import * as mqtt from 'mqtt-packet';
import type { CaseSpec, GeneratorResult, QoS } from '../types';
import { FrameReader, PUBACK, PUBCOMP, PUBREC, PUBREL, PublishEncoder, puback, pubcomp, pubrec, pubrel, readHeaderAt, type PayloadHeader } from './codec';
import { LatencySampler, Stream } from './tracker';

export interface EngineHooks {
  onMeasureStart?(): void;
  onMeasureEnd?(): void;
  /** Connect case: called with all connections open; the engine closes them when this resolves. */
  onConnected?(connected: number): Promise<void>;
  log?(msg: string): void;
}

const DISCONNECT = Buffer.from([0xe0, 0x00]);
/** The drain gives up after this long without a single delivery or ack (the QoS 0 stall timeout still applies). */
const DRAIN_IDLE_MS = 3000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class ErrorLog {
  readonly counts = new Map<string, number>();
  add(msg: string): void {
    this.counts.set(msg, (this.counts.get(msg) ?? 0) + 1);
  }
  list(): string[] {
    return [...this.counts].slice(0, 20).map(([m, n]) => (n > 1 ? `${m} (x${n})` : m));
  }
}

/**
 * mqtt-packet decodes the control packets. FrameReader only hands it complete frames, so one parser
 * is shared by all connections (no per-connection parser state), which keeps connection setup cheap.
 */
class ControlParser {
  private parser = this.make();
  private target: Conn | null = null;
  private failed: string | null = null;

  private make(): ReturnType<typeof mqtt.parser> {
    const p = mqtt.parser({ protocolVersion: 4 });
    p.on('packet', (pkt: mqtt.Packet) => this.target?.onPacket(pkt));
    p.on('error', (e: Error) => {
      this.failed = e.message;
    });
    return p;
  }

  /** Parses one complete frame for `conn`; returns an error message or null. */
  parse(conn: Conn, frame: Buffer): string | null {
    this.target = conn;
    this.failed = null;
    this.parser.parse(frame);
    this.target = null;
    const failed = this.failed;
    if (failed !== null) this.parser = this.make();
    return failed;
  }
}
const control = new ControlParser();

/** One MQTT 3.1.1 connection on a raw socket. */
export class Conn {
  readonly socket: net.Socket;
  /** Acks waiting for the next batched flush (see Engine.sendAck). */
  acks: Buffer[] = [];
  /** Control packets (CONNACK, SUBACK, ...), decoded by mqtt-packet. */
  onPacket: (p: mqtt.Packet) => void = () => undefined;
  /** PUBLISH frames, decoded in place: the payload is buf[start, end). */
  onPublish: (qos: QoS, packetId: number, buf: Buffer, start: number, end: number) => void = () => undefined;
  /** PUBACK / PUBREC / PUBREL / PUBCOMP (packet types 4..7). */
  onAck: (type: number, packetId: number) => void = () => undefined;
  closed = false;
  private readonly frames: FrameReader;

  private constructor(socket: net.Socket, errors: ErrorLog) {
    this.socket = socket;
    socket.setNoDelay(true);
    this.frames = new FrameReader({
      publish: (qos, pid, buf, start, end) => this.onPublish(qos, pid, buf, start, end),
      ack: (type, pid) => this.onAck(type, pid),
      other: (frame) => {
        const err = control.parse(this, frame);
        if (err !== null) {
          errors.add(`parse error: ${err}`);
          socket.destroy();
        }
      },
      error: (msg) => {
        errors.add(`protocol error: ${msg}`);
        socket.destroy();
      },
    });
    socket.on('data', (chunk: Buffer) => {
      // Cork so that the acks this chunk triggers leave in as few writes as possible.
      socket.cork();
      this.frames.push(chunk);
      socket.uncork();
    });
    socket.on('close', () => {
      this.closed = true;
    });
  }

  /** Opens a socket, sends CONNECT and resolves on a successful CONNACK. `clean` false: a persistent session. */
  static open(host: string, port: number, clientId: string, timeoutMs: number, errors: ErrorLog, clean = true): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      const conn = new Conn(socket, errors);
      let settled = false;
      const fail = (msg: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(msg));
      };
      const timer = setTimeout(() => fail('connect timeout'), timeoutMs);
      socket.once('connect', () => {
        socket.write(mqtt.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, keepalive: 0, clientId }));
      });
      socket.on('error', (e: Error) => {
        if (!settled) fail(`socket error: ${e.message}`);
        else errors.add(`socket error: ${e.message}`);
      });
      socket.on('close', () => fail('closed before CONNACK'));
      conn.onPacket = (p) => {
        if (p.cmd !== 'connack') return fail(`expected connack, got ${p.cmd}`);
        const rc = p.returnCode ?? p.reasonCode ?? 0;
        if (rc !== 0) return fail(`connack return code ${rc}`);
        settled = true;
        clearTimeout(timer);
        conn.onPacket = () => undefined;
        resolve(conn);
      };
    });
  }

  subscribe(topic: string, qos: QoS, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('suback timeout')), timeoutMs);
      const prev = this.onPacket;
      this.onPacket = (p) => {
        if (p.cmd !== 'suback') return prev(p);
        clearTimeout(timer);
        this.onPacket = prev;
        const g = p.granted[0];
        if (typeof g !== 'number' || g >= 0x80) reject(new Error(`subscription refused (${String(g)})`));
        else resolve();
      };
      this.socket.write(mqtt.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] }));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end(DISCONNECT);
    });
  }
}

async function closeAll(conns: Conn[], boundMs: number): Promise<void> {
  await Promise.race([Promise.all(conns.map((c) => c.close())), sleep(boundMs)]);
  for (const c of conns) if (!c.closed) c.socket.destroy();
}

/** Opens `n` connections with at most `concurrency` handshakes in flight, within `deadline`. */
async function openMany(
  host: string,
  port: number,
  n: number,
  concurrency: number,
  deadline: number,
  idPrefix: string,
  errors: ErrorLog,
  clean = true,
): Promise<{ conns: (Conn | null)[]; failed: number }> {
  const conns: (Conn | null)[] = new Array<Conn | null>(n).fill(null);
  let next = 0;
  let failed = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const left = deadline - performance.now();
      if (left <= 0) {
        failed++;
        continue;
      }
      try {
        conns[i] = await Conn.open(host, port, `${idPrefix}${i}`, Math.min(left, 10_000), errors, clean);
      } catch (e) {
        failed++;
        errors.add(`connect: ${(e as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, n)) }, worker));
  return { conns, failed };
}

/** A publisher: bounded window of outstanding messages, optional steady rate. */
class Publisher {
  next = 0;
  base = 0;
  unacked = 0;
  stalled = 0;
  publishedInWindow = 0;
  tokens: number;
  blocked = false;
  protocolErrors = 0;
  private readonly remaining: Int32Array;
  private readonly sentAt: Float64Array;
  private readonly pidToSeq = new Int32Array(65536).fill(-1);
  private nextPid = 1;
  private readonly enc: PublishEncoder;
  private readonly minBatch: number;

  constructor(
    readonly id: number,
    readonly conn: Conn,
    topic: string,
    readonly spec: CaseSpec,
    /** Deliveries each message must reach before its window slot frees. */
    readonly fanout: number,
    private readonly engine: Engine,
  ) {
    this.enc = new PublishEncoder(topic, spec.qos, spec.payloadBytes);
    this.remaining = new Int32Array(spec.window);
    this.minBatch = Math.max(1, Math.floor(spec.window / 8));
    this.sentAt = new Float64Array(spec.window);
    // Rate-driven publishers start staggered across one send interval so the load is steady.
    this.tokens = spec.ratePerPublisher > 0 ? -id / Math.max(1, spec.publishers) : Infinity;
    conn.socket.on('drain', () => {
      this.blocked = false;
      engine.schedule(this);
    });
    conn.onAck = (type, pid) => this.onAckFrame(type, pid);
    conn.onPublish = () => this.protocolErrors++;
    conn.onPacket = () => this.protocolErrors++;
  }

  get outstanding(): number {
    return this.next - this.base;
  }

  private allocPid(): number {
    for (let tries = 0; tries < 65535; tries++) {
      const pid = this.nextPid;
      this.nextPid = pid === 65535 ? 1 : pid + 1;
      if (this.pidToSeq[pid] < 0) return pid;
    }
    return 0;
  }

  pump(now: number): void {
    const s = this.spec;
    if (this.blocked || this.conn.closed || this.tokens < 1) return;
    if (this.next >= s.maxMessagesPerPublisher || this.next - this.base >= s.window) return;
    // Unpaced publishers refill their window in batches (>= window/8 free slots), so one write
    // carries several messages instead of one syscall per message.
    if (s.ratePerPublisher === 0 && this.next - this.base > s.window - this.minBatch) return;
    const sock = this.conn.socket;
    sock.cork();
    while (this.tokens >= 1 && this.next < s.maxMessagesPerPublisher && this.next - this.base < s.window) {
      let pid = 0;
      if (s.qos > 0) {
        pid = this.allocPid();
        if (pid === 0) break;
        this.pidToSeq[pid] = this.next;
        this.unacked++;
      }
      const slot = this.next % s.window;
      this.remaining[slot] = this.fanout + (s.qos > 0 ? 1 : 0);
      this.sentAt[slot] = now;
      const ok = sock.write(this.enc.encode(this.id, this.next, now, pid));
      this.next++;
      this.tokens--;
      if (this.engine.measuring) this.publishedInWindow++;
      if (!ok) {
        this.blocked = true;
        break;
      }
    }
    sock.uncork();
  }

  /** First delivery of `seq` to one subscriber. */
  delivered(seq: number): void {
    if (seq < this.base || seq >= this.next) return;
    if (--this.remaining[seq % this.spec.window] <= 0 && seq === this.base) this.advance();
  }

  /** QoS 0: one subscriber's highest sequence moved from `from` to `to`; settles (from, to]. */
  coveredUpTo(from: number, to: number): void {
    const w = this.spec.window;
    const lo = Math.max(from + 1, this.base);
    const hi = Math.min(to, this.next - 1);
    for (let seq = lo; seq <= hi; seq++) this.remaining[seq % w]--;
    if (lo === this.base && lo <= hi && this.remaining[lo % w] <= 0) this.advance();
  }

  private acked(pid: number): void {
    const seq = this.pidToSeq[pid];
    if (seq < 0) {
      this.protocolErrors++;
      return;
    }
    this.pidToSeq[pid] = -1;
    this.unacked--;
    this.engine.progress++;
    if (seq < this.base || seq >= this.next) return;
    if (--this.remaining[seq % this.spec.window] <= 0 && seq === this.base) this.advance();
  }

  private advance(): void {
    const w = this.spec.window;
    while (this.base < this.next && this.remaining[this.base % w] <= 0) this.base++;
    this.engine.schedule(this);
  }

  /** Frees slots of messages older than stallMs (lost or very late); they are counted as lost if they never arrive. */
  unstall(now: number): void {
    const w = this.spec.window;
    let moved = false;
    while (this.base < this.next && now - this.sentAt[this.base % w] > this.spec.stallMs) {
      if (this.remaining[this.base % w] > 0) this.stalled++;
      this.base++;
      moved = true;
    }
    if (moved) this.advance();
  }

  private onAckFrame(type: number, pid: number): void {
    if (type === PUBACK && this.spec.qos === 1) this.acked(pid);
    else if (type === PUBREC && this.spec.qos === 2) {
      this.engine.sendAck(this.conn, pubrel(pid));
    }
    else if (type === PUBCOMP && this.spec.qos === 2) this.acked(pid);
    else this.protocolErrors++;
  }
}

interface Subscriber {
  conn: Conn;
  streams: Map<number, Stream>;
}

/** Runs one case. The engine is also used in-process by the tests. */
export class Engine {
  measuring = false;
  private readonly errors = new ErrorLog();
  private readonly latency = new LatencySampler();
  private pubs: Publisher[] = [];
  private subs: Subscriber[] = [];
  private dirty = new Set<Publisher>();
  private flushScheduled = false;
  private running = false;
  private deliveredInWindow = 0;
  private unexpected = 0;
  private unexpectedAcks = 0;
  private uniqueReceived = 0;
  /** Deliveries + acks so far: the drain stops early once this stops moving. */
  progress = 0;
  private readonly idPrefix: string;

  constructor(
    private readonly spec: CaseSpec,
    private readonly host: string,
    private readonly port: number,
    private readonly hooks: EngineHooks = {},
    /** Where subscribers connect, when not to `port` (cluster mode: publishers on one node, subscribers on another). */
    private readonly subPort: number = port,
  ) {
    // Unique, short (<= 23 chars) client ids: aedes and MQTT 3.1.1 brokers may cap the length.
    this.idPrefix = `b${(process.pid % 100000).toString(36)}${(Date.now() % 1e6).toString(36)}`;
  }

  private ackPending = new Set<Conn>();
  private ackTimer: NodeJS.Timeout | null = null;

  /**
   * Acks (PUBACK, PUBREC, PUBREL, PUBCOMP) are batched per connection for spec.ackBatchMs (0: written at
   * once): a broker that writes one packet per syscall otherwise costs the generator one write per
   * message. Not written once the socket is closing (a QoS 2 exchange may still be finishing).
   */
  sendAck(conn: Conn, buf: Buffer): void {
    if (!conn.socket.writable) return;
    if (this.spec.ackBatchMs <= 0) {
      conn.socket.write(buf);
      return;
    }
    conn.acks.push(buf);
    this.ackPending.add(conn);
    if (this.ackTimer === null) this.ackTimer = setTimeout(() => this.flushAcks(), this.spec.ackBatchMs);
  }

  private flushAcks(): void {
    this.ackTimer = null;
    const batch = this.ackPending;
    this.ackPending = new Set();
    for (const c of batch) {
      const acks = c.acks;
      c.acks = [];
      if (!c.socket.writable) continue;
      c.socket.write(acks.length === 1 ? acks[0] : Buffer.concat(acks));
    }
  }

  schedule(p: Publisher): void {
    if (!this.running) return;
    this.dirty.add(p);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const now = performance.now();
    const batch = this.dirty;
    this.dirty = new Set();
    if (!this.running) return;
    for (const p of batch) p.pump(now);
  }

  private readonly hdr: PayloadHeader = { pubId: 0, seq: 0, sentAt: 0 };

  private deliver(sub: Subscriber, buf: Buffer, start: number, end: number): void {
    const h = this.hdr;
    const stream = readHeaderAt(buf, start, end, h) ? sub.streams.get(h.pubId) : undefined;
    if (!stream) {
      this.unexpected++;
      return;
    }
    const prevHighest = stream.highest;
    const first = stream.record(h.seq);
    if (this.measuring) {
      this.deliveredInWindow++;
      this.latency.add(performance.now() - h.sentAt);
    }
    if (first) {
      this.uniqueReceived++;
      this.progress++;
    }
    const pub = this.pubs[h.pubId];
    if (!first || !pub) return;
    if (this.spec.qos === 0) {
      // QoS 0 may lose messages: a later message reaching this subscriber also settles the earlier
      // ones for the window (they are counted as lost at the end if they never arrive).
      if (h.seq > prevHighest) pub.coveredUpTo(prevHighest, h.seq);
    } else {
      pub.delivered(h.seq);
    }
  }

  private attachSubscriber(conn: Conn): Subscriber {
    const sub: Subscriber = { conn, streams: new Map() };
    conn.onPublish = (qos, pid, buf, start, end) => {
      // Acks are not written once we started closing (a QoS 2 exchange may still be finishing).
      if (qos === 1) this.sendAck(conn, puback(pid));
      else if (qos === 2) this.sendAck(conn, pubrec(pid));
      this.deliver(sub, buf, start, end);
    };
    conn.onAck = (type, pid) => {
      if (type !== PUBREL) this.unexpectedAcks++;
      else this.sendAck(conn, pubcomp(pid));
    };
    return sub;
  }

  private topology(): { pubTopic: (i: number) => string; subTopic: (i: number) => string; expects: (sub: number) => number[] } {
    const s = this.spec;
    switch (s.scenario) {
      case 'fanout':
        return { pubTopic: () => 'bench/fanout', subTopic: () => 'bench/fanout', expects: () => [0] };
      case 'fanin':
        return {
          pubTopic: (i) => `bench/${i}/data`,
          subTopic: () => 'bench/+/data',
          expects: () => Array.from({ length: s.publishers }, (_, i) => i),
        };
      default:
        return { pubTopic: (i) => `bench/p2p/${i}`, subTopic: (i) => `bench/p2p/${i}`, expects: (i) => [i] };
    }
  }

  async run(): Promise<GeneratorResult> {
    return this.spec.scenario === 'connect' ? this.runConnect() : this.runMessages();
  }

  private baseResult(): GeneratorResult {
    const s = this.spec;
    return {
      caseId: s.id,
      scenario: s.scenario,
      qos: s.qos,
      payloadBytes: s.payloadBytes,
      publishers: s.publishers,
      subscribers: s.subscribers,
      measuredMs: 0,
      publishedInWindow: 0,
      deliveredInWindow: 0,
      deliveredPerSec: 0,
      publishedPerSec: 0,
      offeredPerSec: s.ratePerPublisher * s.publishers,
      totalPublished: 0,
      stalled: 0,
      drainMs: 0,
      drainedFully: false,
      latency: { samples: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 },
      correctness: { expected: 0, received: 0, lost: 0, duplicates: 0, outOfOrder: 0, unexpected: 0, violations: [] },
      generatorCpuPct: 0,
      errors: [],
    };
  }

  private async runConnect(): Promise<GeneratorResult> {
    const s = this.spec;
    const res = this.baseResult();
    this.hooks.onMeasureStart?.();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const { conns, failed } = await openMany(
      this.host, this.port, s.connections, s.connectConcurrency, t0 + s.setupTimeoutMs, `${this.idPrefix}c`, this.errors,
    );
    const elapsed = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const open = conns.filter((c): c is Conn => c !== null);
    res.connect = {
      attempted: s.connections,
      connected: open.length,
      failed,
      elapsedMs: Math.round(elapsed),
      perSec: Math.round((open.length / elapsed) * 1000),
    };
    res.measuredMs = Math.round(elapsed);
    res.generatorCpuPct = Math.round(((cpu.user + cpu.system) / 1000 / elapsed) * 1000) / 10;
    if (failed > 0) res.correctness.violations.push(`${failed} of ${s.connections} connections failed`);
    if (this.hooks.onConnected) await this.hooks.onConnected(open.length);
    await closeAll(open, 3000);
    res.errors = this.errors.list();
    return res;
  }

  private async runMessages(): Promise<GeneratorResult> {
    const s = this.spec;
    const res = this.baseResult();
    const topo = this.topology();
    const setupDeadline = performance.now() + s.setupTimeoutMs;
    const all: Conn[] = [];
    try {
      // Subscribers first, each subscribed before any publisher connects.
      const subOpen = await openMany(this.host, this.subPort, s.subscribers, s.connectConcurrency, setupDeadline, `${this.idPrefix}s`, this.errors, !s.persistent);
      all.push(...subOpen.conns.filter((c): c is Conn => c !== null));
      if (subOpen.failed > 0) throw new Error(`${subOpen.failed} of ${s.subscribers} subscribers failed to connect`);
      this.subs = subOpen.conns.map((c, i) => {
        const sub = this.attachSubscriber(c as Conn);
        for (const p of topo.expects(i)) sub.streams.set(p, new Stream());
        return sub;
      });
      let subFailed = 0;
      await Promise.all(
        this.subs.map((sub, i) =>
          sub.conn.subscribe(topo.subTopic(i), s.qos, Math.max(1, setupDeadline - performance.now())).catch((e: Error) => {
            subFailed++;
            this.errors.add(`subscribe: ${e.message}`);
          }),
        ),
      );
      if (subFailed > 0) throw new Error(`${subFailed} of ${s.subscribers} subscriptions failed`);
      const pubOpen = await openMany(this.host, this.port, s.publishers, s.connectConcurrency, setupDeadline, `${this.idPrefix}p`, this.errors, !s.persistent);
      all.push(...pubOpen.conns.filter((c): c is Conn => c !== null));
      if (pubOpen.failed > 0) throw new Error(`${pubOpen.failed} of ${s.publishers} publishers failed to connect`);
      const fanout = s.scenario === 'fanout' ? s.subscribers : 1;
      this.pubs = pubOpen.conns.map((c, i) => new Publisher(i, c as Conn, topo.pubTopic(i), s, fanout, this));
    } catch (e) {
      res.correctness.violations.push(`setup: ${(e as Error).message}`);
      res.errors = this.errors.list();
      await closeAll(all, 2000);
      return res;
    }

    // Publish: warm-up, then the measured window; every phase is bounded in time.
    this.running = true;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      const dt = now - last;
      last = now;
      for (const p of this.pubs) {
        if (s.ratePerPublisher > 0) {
          // Token bucket, burst capped at 50 ms worth of messages (or 1).
          p.tokens = Math.min(p.tokens + (s.ratePerPublisher * dt) / 1000, Math.max(1, s.ratePerPublisher * 0.05));
        }
        p.unstall(now);
        if (s.ratePerPublisher > 0 && p.tokens >= 1) this.schedule(p);
      }
    }, 2);
    for (const p of this.pubs) this.schedule(p);
    const allDone = (): boolean => this.pubs.every((p) => p.next >= s.maxMessagesPerPublisher);

    await sleep(s.warmupMs);
    this.measuring = true;
    this.hooks.onMeasureStart?.();
    const cpu0 = process.cpuUsage();
    const m0 = performance.now();
    while (performance.now() - m0 < s.measureMs && !allDone()) await sleep(Math.min(50, s.measureMs));
    this.measuring = false;
    const m1 = performance.now();
    const cpu = process.cpuUsage(cpu0);
    this.hooks.onMeasureEnd?.();
    this.running = false;

    // Drain: wait (bounded) until every message is acked and delivered. QoS 0 may lose messages, so
    // there a message also settles when a later one arrived or it stalled out.
    const d0 = performance.now();
    const expected = this.pubs.reduce((a, p) => a + p.next * p.fanout, 0);
    const drained = (): boolean =>
      this.pubs.every((p) => p.unacked === 0 && (s.qos > 0 || p.outstanding === 0)) && (s.qos === 0 || this.uniqueReceived >= expected);
    // Bounded twice: at most drainMs, and at most drainIdleMs without any new delivery or ack.
    const idleMs = Math.min(s.drainMs, s.drainIdleMs ?? DRAIN_IDLE_MS);
    let lastProgress = this.progress;
    let lastMove = d0;
    while (!drained() && performance.now() - d0 < s.drainMs) {
      await sleep(20);
      const now = performance.now();
      if (this.progress !== lastProgress) {
        lastProgress = this.progress;
        lastMove = now;
      } else if (now - lastMove > idleMs) break;
    }
    res.drainedFully = drained();
    res.drainMs = Math.round(performance.now() - d0);
    clearInterval(ticker);

    const measured = m1 - m0;
    res.measuredMs = Math.round(measured);
    res.deliveredInWindow = this.deliveredInWindow;
    res.publishedInWindow = this.pubs.reduce((a, p) => a + p.publishedInWindow, 0);
    res.deliveredPerSec = Math.round((res.deliveredInWindow / measured) * 1000);
    res.publishedPerSec = Math.round((res.publishedInWindow / measured) * 1000);
    res.totalPublished = this.pubs.reduce((a, p) => a + p.next, 0);
    res.stalled = this.pubs.reduce((a, p) => a + p.stalled, 0);
    res.latency = this.latency.stats();
    res.generatorCpuPct = Math.round(((cpu.user + cpu.system) / 1000 / measured) * 1000) / 10;

    const c = res.correctness;
    c.expected = this.pubs.reduce((a, p) => a + p.next * p.fanout, 0);
    for (const sub of this.subs) {
      for (const st of sub.streams.values()) {
        c.received += st.unique;
        c.duplicates += st.duplicates;
        c.outOfOrder += st.outOfOrder;
      }
    }
    c.lost = c.expected - c.received;
    c.unexpected = this.unexpected;
    if (s.qos >= 1 && c.lost > 0) {
      c.violations.push(`lost ${c.lost} at QoS ${s.qos}${res.drainedFully ? '' : ` (not delivered ${res.drainMs} ms after publishing stopped)`}`);
    }
    if (s.qos === 2 && c.duplicates > 0) c.violations.push(`${c.duplicates} duplicates at QoS 2`);
    if (c.unexpected > 0) c.violations.push(`${c.unexpected} unexpected messages`);
    // Each stream is one publisher on one topic: MQTT's ordered-topic rule (4.6) keeps its QoS 1/2 messages in order.
    if (s.qos >= 1 && c.outOfOrder > 0) c.violations.push(`${c.outOfOrder} out of order at QoS ${s.qos}`);
    const protocolErrors = this.pubs.reduce((a, p) => a + p.protocolErrors, 0) + this.unexpectedAcks;
    if (protocolErrors > 0) c.violations.push(`${protocolErrors} unexpected acks`);
    if (this.pubs.some((p) => p.unacked > 0)) c.violations.push(`${this.pubs.reduce((a, p) => a + p.unacked, 0)} publishes never acked`);
    const closed = all.filter((x) => x.closed).length;
    if (closed > 0) c.violations.push(`${closed} connections closed by the broker during the case`);

    await closeAll(all, 2000);
    res.errors = this.errors.list();
    return res;
  }
}
