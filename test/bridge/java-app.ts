// Drives the bridge tests' "backend service": test/bridge/java, a small application on the official
// RocketMQ Java client (rocketmq-client 5.3.3). buildJavaApp() builds it with Maven (once; skipped while
// the build output is newer than the sources), startConsumer()/startProducer() run it and speak its
// JSON-lines protocol (see BridgeApp.java). Every wait is bounded; processes are stopped by their own PID.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';

/** Time for the JVM to start and the client to connect ({"ready":true}). */
export const STARTUP_TIMEOUT_MS = 60_000;
/** Maven may download the client and plugins on the first run. */
const BUILD_TIMEOUT_MS = 10 * 60_000;
const SEND_TIMEOUT_MS = 30_000;
/** stop(): after stdin EOF, then after SIGTERM, before SIGKILL. */
const STOP_GRACE_MS = 10_000;
const STDERR_KEEP_CHARS = 16_384;

export interface ConsumedMessage {
  topic: string;
  tags: string | null;
  /** RocketMQ KEYS property: keys separated by spaces. */
  keys: string | null;
  queueId: number;
  queueOffset: number;
  /** Client message id (UNIQ_KEY). */
  msgId: string;
  bornTimestamp: number;
  storeTimestamp: number;
  reconsumeTimes: number;
  brokerName: string;
  /** Everything msg.getProperties() holds: user properties and RocketMQ's own (UNIQ_KEY, KEYS, TAGS, ...). */
  properties: Record<string, string>;
  body: Buffer;
}

export interface ConsumerOptions {
  namesrv: string;
  topic: string;
  group: string;
  /** Subscription expression, e.g. `a || b`; default `*`. */
  tags?: string;
  broadcast?: boolean;
  /** Called as each message arrives (the benchmark stamps arrival times). */
  onMessage?: (message: ConsumedMessage) => void;
  /**
   * Client instance name. Default: unique per process. Broadcasting consumers keep their offsets in a
   * local file per client id, so only a repeated name resumes where an earlier process stopped.
   */
  instance?: string;
}

export interface JavaConsumer {
  readonly pid: number;
  /** RocketMQ client id (ip@instance). */
  readonly clientId: string;
  /**
   * Whether the first rebalance had assigned queues when the consumer reported ready (the app waits
   * for it up to 15 s). False is legitimate for a clustering consumer with no queue left for it.
   */
  readonly rebalanced: boolean;
  /** Every message received so far, in arrival order. */
  readonly messages: ConsumedMessage[];
  /** Lines on stdout that are not the app's JSON (should stay empty: stdout carries only JSON). */
  readonly strayOutput: string[];
  /**
   * Resolves with the matching messages (all of them, in arrival order) once at least `n` match;
   * rejects after `timeoutMs` or if the process exits, with what was received and the stderr tail.
   */
  waitFor(n: number, timeoutMs: number, predicate?: (m: ConsumedMessage) => boolean): Promise<ConsumedMessage[]>;
  stderrTail(): string;
  stop(): Promise<void>;
}

export interface OutgoingMessage {
  topic: string;
  tags?: string;
  /** One key, or several (sent as RocketMQ's space-separated KEYS). */
  keys?: string | string[];
  properties?: Record<string, string>;
  body: Buffer | string;
}

export interface SendOk {
  ok: true;
  msgId: string;
  offsetMsgId: string;
  status: string;
  queueId: number;
  queueOffset: number;
  brokerName: string;
}

export interface SendFailed {
  ok: false;
  error: string;
  /** Set when the broker answered with a status other than SEND_OK. */
  status?: string;
}

export type SendResult = SendOk | SendFailed;

export interface ProducerOptions {
  namesrv: string;
  /** Producer group (default iotb_test_producer). */
  group?: string;
}

export interface JavaProducer {
  readonly pid: number;
  readonly strayOutput: string[];
  /** Sends synchronously in the Java app; a refused message resolves with `ok: false` and the client's error. */
  send(msg: OutgoingMessage): Promise<SendResult>;
  /** send() that rejects unless the result is SEND_OK. */
  sendOk(msg: OutgoingMessage): Promise<SendOk>;
  stderrTail(): string;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------- build

export function repoRoot(): string {
  // Works from test/bridge (sources) and dist/test/bridge (compiled): the first package.json upwards.
  let dir = __dirname;
  for (let i = 0; i < 20; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'test', 'bridge', 'java', 'pom.xml'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error(`repository root (package.json next to test/bridge/java/pom.xml) not found above ${__dirname}`);
}

export function javaAppDir(): string {
  return path.join(repoRoot(), 'test', 'bridge', 'java');
}

function sourceFiles(dir: string): string[] {
  const out = [path.join(dir, 'pom.xml')];
  const walk = (d: string): void => {
    if (!fs.existsSync(d)) return;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(path.join(dir, 'src'));
  return out;
}

function mtimeMs(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

let builtClasspath: string | undefined;

/**
 * Builds test/bridge/java with Maven unless its output is newer than every source (pom.xml, src/**),
 * and returns the Java classpath (target/classes + the dependencies). Synchronous; safe to call from
 * several test processes at once (a lock directory in target/ serialises the Maven runs).
 */
export function buildJavaApp(): string {
  if (builtClasspath !== undefined) return builtClasspath;
  const dir = javaAppDir();
  const target = path.join(dir, 'target');
  const classes = path.join(target, 'classes');
  const classFile = path.join(classes, 'iotbridge', 'BridgeApp.class');
  const cpFile = path.join(target, 'classpath.txt');
  // Written after each successful build: a pom-only change recompiles nothing, so the class file alone
  // could stay older than the pom forever.
  const stamp = path.join(target, 'build.stamp');
  const upToDate = (): boolean => {
    if (!fs.existsSync(classFile) || !fs.existsSync(cpFile)) return false;
    const newestSource = Math.max(...sourceFiles(dir).map(mtimeMs));
    return Math.max(mtimeMs(classFile), mtimeMs(stamp)) > newestSource;
  };

  if (!upToDate()) {
    fs.mkdirSync(target, { recursive: true });
    const lock = path.join(target, 'build.lock');
    const lockDeadline = Date.now() + BUILD_TIMEOUT_MS;
    for (;;) {
      try {
        fs.mkdirSync(lock);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // A lock older than a whole build belongs to a process that died mid-build.
        if (Date.now() - mtimeMs(lock) > BUILD_TIMEOUT_MS) fs.rmSync(lock, { recursive: true, force: true });
        else if (Date.now() > lockDeadline) throw new Error(`timed out waiting for another Maven build of ${dir} (lock ${lock})`);
        else sleepSync(500);
      }
    }
    try {
      if (!upToDate()) runMaven(dir);
    } finally {
      fs.rmSync(lock, { recursive: true, force: true });
    }
  }
  const deps = fs.readFileSync(cpFile, 'utf8').trim();
  builtClasspath = deps ? `${classes}${path.delimiter}${deps}` : classes;
  return builtClasspath;
}

function runMaven(dir: string): void {
  const version = spawnSync('mvn', ['-v'], { encoding: 'utf8' });
  if (version.error || version.status !== 0) {
    throw new Error('Maven (mvn) was not found on PATH; it builds test/bridge/java (the Java RocketMQ test app). Install maven and retry.');
  }
  const r = spawnSync(
    'mvn',
    ['-q', '-B', '-f', path.join(dir, 'pom.xml'), 'package', 'dependency:build-classpath', '-Dmdep.outputFile=target/classpath.txt'],
    { cwd: dir, encoding: 'utf8', timeout: BUILD_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 },
  );
  if (r.error || r.status !== 0) {
    const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n').slice(-30).join('\n');
    const why = r.error ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit code ${r.status}`;
    throw new Error(`Maven build of ${dir} failed (${why}; is Maven Central reachable?):\n${out}`);
  }
  fs.writeFileSync(path.join(dir, 'target', 'build.stamp'), `${new Date().toISOString()}\n`);
}

// ---------------------------------------------------------------------------------------- processes

const JDK17_FLAGS = [
  '--add-exports=java.base/sun.nio.ch=ALL-UNNAMED',
  '--add-opens=java.base/java.nio=ALL-UNNAMED',
  '--add-opens=java.base/java.lang=ALL-UNNAMED',
  '--add-opens=java.base/java.util=ALL-UNNAMED',
];

/** Children still running; killed if this process exits without stopping them. */
const live = new Set<ChildProcessWithoutNullStreams>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });
}

/** One running BridgeApp: stdout lines, stderr tail, exit, bounded start and stop. */
class JavaProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly pid: number;
  readonly strayOutput: string[] = [];
  private stderr = '';
  private exitInfo: string | undefined;
  private readonly exitWaiters: Array<() => void> = [];
  private readonly lineListeners: Array<(value: Record<string, unknown>) => void> = [];

  constructor(args: string[], label: string) {
    const classpath = buildJavaApp();
    const dir = javaAppDir();
    const target = path.join(dir, 'target');
    installExitHook();
    this.child = spawn(
      'java',
      [
        '-Xms32m',
        '-Xmx256m',
        '-XX:+UseSerialGC',
        '-XX:TieredStopAtLevel=1',
        ...JDK17_FLAGS,
        // The client logs to a file under rocketmq.log.root (never to stdout); local offsets of
        // broadcasting consumers go under user.home. Both stay inside the git-ignored target/.
        `-Duser.home=${path.join(target, 'home')}`,
        `-Drocketmq.log.root=${path.join(target, 'rocketmq-logs')}`,
        `-Drocketmq.client.localOffsetStoreDir=${path.join(target, 'home', '.rocketmq_offsets')}`,
        '-cp',
        classpath,
        'iotbridge.BridgeApp',
        ...args,
      ],
      { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    if (this.child.pid === undefined) {
      // spawn failures (java not on PATH) are reported through 'error'; pid is then undefined.
      this.pid = -1;
    } else {
      this.pid = this.child.pid;
    }
    live.add(this.child);
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-STDERR_KEEP_CHARS);
    });
    this.child.stdin.on('error', () => {
      // EPIPE when the JVM is gone; the exit is reported through 'exit'.
    });
    const lines = readline.createInterface({ input: this.child.stdout, crlfDelay: Infinity });
    lines.on('line', (line) => {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        value = undefined;
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        this.strayOutput.push(line);
        return;
      }
      for (const l of this.lineListeners) l(value as Record<string, unknown>);
    });
    const onExit = (why: string): void => {
      if (this.exitInfo !== undefined) return;
      this.exitInfo = `${label} (pid ${this.pid}) ${why}`;
      live.delete(this.child);
      for (const w of this.exitWaiters.splice(0)) w();
    };
    this.child.on('error', (err) => onExit(`failed: ${err.message} (is java on PATH?)`));
    this.child.on('exit', (code, signal) => onExit(signal ? `exited on ${signal}` : `exited with code ${code}`));
  }

  onLine(listener: (value: Record<string, unknown>) => void): void {
    this.lineListeners.push(listener);
  }

  get exited(): string | undefined {
    return this.exitInfo;
  }

  onExit(listener: () => void): void {
    if (this.exitInfo !== undefined) listener();
    else this.exitWaiters.push(listener);
  }

  stderrTail(lines = 30): string {
    return this.stderr.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** Resolves with the {"ready":true,...} line; kills the process and rejects on exit or timeout. */
  waitReady(what: string): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (why: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.kill('SIGKILL');
        const stray = this.strayOutput.length ? `\nstdout (not JSON):\n${this.strayOutput.slice(-10).join('\n')}` : '';
        reject(new Error(`${what} did not start: ${why}\nstderr tail:\n${this.stderrTail()}${stray}`));
      };
      const timer = setTimeout(() => fail(`no {"ready":true} within ${STARTUP_TIMEOUT_MS} ms`), STARTUP_TIMEOUT_MS);
      this.onLine((value) => {
        if (settled || value.ready !== true) return;
        settled = true;
        clearTimeout(timer);
        resolve(value);
      });
      this.onExit(() => fail(this.exitInfo ?? 'exited'));
    });
  }

  kill(signal: NodeJS.Signals): void {
    if (this.exitInfo !== undefined || this.pid < 0) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }

  private waitExit(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.exitInfo !== undefined) return resolve(true);
      const timer = setTimeout(() => resolve(false), ms);
      this.onExit(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** stdin EOF (the app shuts its client down), then SIGTERM, then SIGKILL; each step bounded. */
  async stop(): Promise<void> {
    if (this.exitInfo !== undefined) return;
    this.child.stdin.end();
    if (await this.waitExit(STOP_GRACE_MS)) return;
    this.kill('SIGTERM');
    if (await this.waitExit(STOP_GRACE_MS)) return;
    this.kill('SIGKILL');
    if (!(await this.waitExit(STOP_GRACE_MS))) throw new Error(`pid ${this.pid} survived SIGKILL for ${STOP_GRACE_MS} ms`);
  }
}

// ---------------------------------------------------------------------------------------- parsing

function str(v: Record<string, unknown>, key: string): string {
  const x = v[key];
  if (typeof x !== 'string') throw new Error(`field ${key} is not a string in ${JSON.stringify(v)}`);
  return x;
}

function strOrNull(v: Record<string, unknown>, key: string): string | null {
  const x = v[key];
  if (x === null || x === undefined) return null;
  if (typeof x !== 'string') throw new Error(`field ${key} is not a string in ${JSON.stringify(v)}`);
  return x;
}

function num(v: Record<string, unknown>, key: string): number {
  const x = v[key];
  if (typeof x !== 'number') throw new Error(`field ${key} is not a number in ${JSON.stringify(v)}`);
  return x;
}

function stringRecord(v: Record<string, unknown>, key: string): Record<string, string> {
  const x = v[key];
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new Error(`field ${key} is not an object in ${JSON.stringify(v)}`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(x)) {
    if (typeof val !== 'string') throw new Error(`property ${k} is not a string in ${JSON.stringify(v)}`);
    out[k] = val;
  }
  return out;
}

function parseConsumed(v: Record<string, unknown>): ConsumedMessage {
  return {
    topic: str(v, 'topic'),
    tags: strOrNull(v, 'tags'),
    keys: strOrNull(v, 'keys'),
    queueId: num(v, 'queueId'),
    queueOffset: num(v, 'queueOffset'),
    msgId: str(v, 'msgId'),
    bornTimestamp: num(v, 'bornTimestamp'),
    storeTimestamp: num(v, 'storeTimestamp'),
    reconsumeTimes: num(v, 'reconsumeTimes'),
    brokerName: str(v, 'brokerName'),
    properties: stringRecord(v, 'properties'),
    body: Buffer.from(str(v, 'body'), 'base64'),
  };
}

function parseSendResult(v: Record<string, unknown>): SendResult {
  if (v.ok === true) {
    return {
      ok: true,
      msgId: str(v, 'msgId'),
      offsetMsgId: str(v, 'offsetMsgId'),
      status: str(v, 'status'),
      queueId: num(v, 'queueId'),
      queueOffset: num(v, 'queueOffset'),
      brokerName: str(v, 'brokerName'),
    };
  }
  const status = strOrNull(v, 'status');
  return { ok: false, error: strOrNull(v, 'error') ?? JSON.stringify(v), ...(status === null ? {} : { status }) };
}

function describe(m: ConsumedMessage): string {
  return `${m.brokerName}/${m.queueId}@${m.queueOffset} tags=${m.tags ?? '-'} keys=${m.keys ?? '-'} body=${m.body.length}B`;
}

// ---------------------------------------------------------------------------------------- consumer

export async function startConsumer(opts: ConsumerOptions): Promise<JavaConsumer> {
  const args = ['consume', '--namesrv', opts.namesrv, '--topic', opts.topic, '--group', opts.group];
  if (opts.tags !== undefined) args.push('--tags', opts.tags);
  if (opts.broadcast) args.push('--broadcast');
  if (opts.instance !== undefined) args.push('--instance', opts.instance);
  const proc = new JavaProcess(args, `Java consumer ${opts.group}`);
  const messages: ConsumedMessage[] = [];
  const parseErrors: string[] = [];
  const changed: Array<() => void> = [];
  proc.onLine((value) => {
    if (value.ready === true) return;
    try {
      const message = parseConsumed(value);
      messages.push(message);
      opts.onMessage?.(message);
    } catch (err) {
      parseErrors.push((err as Error).message);
    }
    for (const c of changed.slice()) c();
  });
  proc.onExit(() => {
    for (const c of changed.slice()) c();
  });
  const ready = await proc.waitReady(`Java consumer (group ${opts.group}, topic ${opts.topic})`);

  const waitFor = (n: number, timeoutMs: number, predicate: (m: ConsumedMessage) => boolean = () => true): Promise<ConsumedMessage[]> =>
    new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(timer);
        const i = changed.indexOf(check);
        if (i >= 0) changed.splice(i, 1);
      };
      const fail = (why: string): void => {
        done();
        const matching = messages.filter(predicate);
        const shown = messages.slice(-20).map(describe).join('\n  ');
        const errors = parseErrors.length ? `\nunparsable lines:\n  ${parseErrors.slice(-5).join('\n  ')}` : '';
        reject(
          new Error(
            `waiting for ${n} messages: ${why}; ${matching.length} matching of ${messages.length} received` +
              `${messages.length ? ` (last ${Math.min(20, messages.length)}):\n  ${shown}` : ''}${errors}\nstderr tail:\n${proc.stderrTail()}`,
          ),
        );
      };
      function check(): void {
        const matching = messages.filter(predicate);
        if (matching.length >= n) {
          done();
          resolve(matching);
        } else if (proc.exited !== undefined) {
          fail(proc.exited);
        }
      }
      timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
      changed.push(check);
      check();
    });

  return {
    pid: proc.pid,
    clientId: typeof ready.clientId === 'string' ? ready.clientId : '',
    rebalanced: ready.rebalanced === true,
    messages,
    strayOutput: proc.strayOutput,
    waitFor,
    stderrTail: () => proc.stderrTail(),
    stop: () => proc.stop(),
  };
}

// ---------------------------------------------------------------------------------------- producer

export async function startProducer(opts: ProducerOptions): Promise<JavaProducer> {
  const args = ['produce', '--namesrv', opts.namesrv];
  if (opts.group !== undefined) args.push('--group', opts.group);
  const proc = new JavaProcess(args, 'Java producer');
  const pending = new Map<number, { resolve: (r: SendResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  let nextId = 1;
  proc.onLine((value) => {
    if (value.ready === true) return;
    const id = value.id;
    const entry = typeof id === 'number' ? pending.get(id) : undefined;
    if (!entry || typeof id !== 'number') {
      proc.strayOutput.push(JSON.stringify(value));
      return;
    }
    pending.delete(id);
    clearTimeout(entry.timer);
    try {
      entry.resolve(parseSendResult(value));
    } catch (err) {
      entry.reject(err as Error);
    }
  });
  proc.onExit(() => {
    for (const [id, entry] of pending) {
      clearTimeout(entry.timer);
      entry.reject(new Error(`send #${id}: ${proc.exited ?? 'Java producer exited'}\nstderr tail:\n${proc.stderrTail()}`));
    }
    pending.clear();
  });
  await proc.waitReady('Java producer');

  const send = (msg: OutgoingMessage): Promise<SendResult> =>
    new Promise((resolve, reject) => {
      if (proc.exited !== undefined) return reject(new Error(`cannot send: ${proc.exited}`));
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`send #${id} to ${msg.topic}: no answer within ${SEND_TIMEOUT_MS} ms\nstderr tail:\n${proc.stderrTail()}`));
      }, SEND_TIMEOUT_MS);
      pending.set(id, { resolve, reject, timer });
      const body = typeof msg.body === 'string' ? Buffer.from(msg.body, 'utf8') : msg.body;
      const request = {
        id,
        topic: msg.topic,
        ...(msg.tags !== undefined ? { tags: msg.tags } : {}),
        ...(msg.keys !== undefined ? { keys: msg.keys } : {}),
        ...(msg.properties !== undefined ? { properties: msg.properties } : {}),
        body: body.toString('base64'),
      };
      proc.child.stdin.write(`${JSON.stringify(request)}\n`);
    });

  return {
    pid: proc.pid,
    strayOutput: proc.strayOutput,
    send,
    sendOk: async (msg) => {
      const r = await send(msg);
      if (!r.ok) throw new Error(`send to ${msg.topic} failed: ${r.error}`);
      return r;
    },
    stderrTail: () => proc.stderrTail(),
    stop: () => proc.stop(),
  };
}
