// Broker definitions and process control: start under `taskset -c <core>`, wait until ready,
// sample /proc, stop by the PID we started (SIGTERM, then SIGKILL after a bound).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { CaseSpec } from './types';
import { NOT_IN_MATRIX } from './report';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export interface LaunchSpec {
  cmd: string;
  args: string[];
  /** 'listening': wait for a stdout/stderr line containing "listening"; 'port': poll the TCP port. */
  ready: 'listening' | 'port';
}

export interface BrokerDef {
  /** Key used in results: iot-bridge, iot-bridge-relaxed, iot-bridge-2p, aedes, mosquitto, bare-node. */
  name: string;
  label: string;
  /** Null when the broker can run, otherwise why it is skipped. */
  unavailable(): string | null;
  version(): string;
  /** `spec`: the case it runs (Mosquitto persists only for persistent-session cases). */
  launch(port: number, workDir: string, spec?: CaseSpec): LaunchSpec;
  /** Runs only these scenarios (a baseline that is not a broker); the others are skipped with `onlyWhy`. */
  onlyScenarios?: CaseSpec['scenario'][];
  onlyWhy?: string;
  /** Without --cases, runs only these case ids; the others are skipped with `defaultCasesWhy`. */
  defaultCases?: string[];
  defaultCasesWhy?: string;
}

function readJson(file: string): { version?: string } {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: string };
  } catch {
    return {};
  }
}

function gitHead(): string {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

/**
 * iot-bridge through its CLI contract: `node <cli> start --port N --data-dir DIR [--durability relaxed] [--processes P]`.
 * With `processes` > 1 the started PID is a primary that forks P worker processes (all on the broker's
 * core, the affinity is inherited); its CPU and RSS are those of the whole process tree.
 */
export function iotBridge(cliPath: string, relaxed: boolean, processes = 1): BrokerDef {
  const multi = processes > 1;
  return {
    name: multi ? `iot-bridge-${processes}p` : relaxed ? 'iot-bridge-relaxed' : 'iot-bridge',
    label: multi ? `iot-bridge, ${processes} processes` : relaxed ? 'iot-bridge (relaxed)' : 'iot-bridge',
    unavailable: () =>
      fs.existsSync(cliPath)
        ? null
        : `iot-bridge skipped: ${path.relative(REPO_ROOT, cliPath) || cliPath} not found (build the broker on main, then npm run build)`,
    version: () => `${readJson(path.join(REPO_ROOT, 'package.json')).version ?? '?'} (${gitHead()})`,
    launch: (port, workDir) => ({
      cmd: process.execPath,
      args: [
        cliPath,
        'start',
        '--port',
        String(port),
        '--data-dir',
        path.join(workDir, 'data'),
        ...(relaxed ? ['--durability', 'relaxed'] : []),
        ...(multi ? ['--processes', String(processes)] : []),
      ],
      ready: 'listening',
    }),
    ...(multi ? { defaultCases: SCALING_CASES, defaultCasesWhy: NOT_IN_MATRIX } : {}),
  };
}

/**
 * The cases the multi-process variant runs in the default matrix (issue 9: messages per broker CPU-second
 * with two processes against one); `--cases` given on the command line runs it on every selected case.
 */
export const SCALING_CASES = ['p2p-qos1-64B', 'p2p-qos1-1KiB', 'p2p-persistent-qos1-64B', 'p2p-persistent-qos1-1KiB'];

export function aedes(): BrokerDef {
  const server = path.join(REPO_ROOT, 'dist', 'bench', 'peers', 'aedes-server.js');
  return {
    name: 'aedes',
    label: 'Aedes',
    unavailable: () => (fs.existsSync(server) ? null : `aedes skipped: ${server} not built`),
    version: () => readJson(path.join(REPO_ROOT, 'node_modules', 'aedes', 'package.json')).version ?? '?',
    launch: (port, workDir) => ({
      cmd: process.execPath,
      args: [server, 'start', '--port', String(port), '--data-dir', path.join(workDir, 'data')],
      ready: 'listening',
    }),
  };
}

/** Not a broker: Node's floor for memory per connection (bench/peers/bare-node-server.ts), connect case only. */
export function bareNode(): BrokerDef {
  const server = path.join(REPO_ROOT, 'dist', 'bench', 'peers', 'bare-node-server.js');
  return {
    name: 'bare-node',
    label: 'bare Node.js',
    unavailable: () => (fs.existsSync(server) ? null : `bare-node skipped: ${server} not built`),
    version: () => process.version,
    launch: (port) => ({ cmd: process.execPath, args: [server, 'start', '--port', String(port)], ready: 'listening' }),
    onlyScenarios: ['connect'],
    onlyWhy: 'baseline: answers CONNECT only',
  };
}

export function findMosquitto(): string | null {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/local/bin/mosquitto']) {
    if (fs.existsSync(p)) return p;
  }
  const r = spawnSync('bash', ['-c', 'command -v mosquitto'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

/** Installs the Debian package if mosquitto is missing (needs root and apt-get). Returns an error or null. */
export function ensureMosquitto(log: (m: string) => void): string | null {
  if (findMosquitto()) return null;
  if (process.getuid?.() !== 0) return 'mosquitto skipped: not installed and not root (apt-get install -y mosquitto)';
  log('mosquitto not found: apt-get update && apt-get install -y mosquitto');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const u = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env, timeout: 180_000 });
  const i = spawnSync('apt-get', ['install', '-y', '-qq', 'mosquitto'], { stdio: 'inherit', env, timeout: 300_000 });
  if (u.status !== 0 || i.status !== 0 || !findMosquitto()) return 'mosquitto skipped: apt-get install mosquitto failed';
  return null;
}

export function mosquitto(inflight: number): BrokerDef {
  return {
    name: 'mosquitto',
    label: 'Mosquitto',
    unavailable: () => (findMosquitto() ? null : 'mosquitto skipped: not installed'),
    version: () => {
      const bin = findMosquitto();
      if (!bin) return '?';
      const r = spawnSync(bin, ['-h'], { encoding: 'utf8' });
      const m = /mosquitto version (\S+)/.exec(`${r.stdout}${r.stderr}`);
      return m ? m[1] : '?';
    },
    launch: (port, workDir, spec) => {
      const conf = path.join(workDir, 'mosquitto.conf');
      // Persistent-session cases: persistence on, as a user who wants durable sessions runs it
      // (saved on the autosave interval and at exit; Mosquitto never fsyncs per message).
      const persistence = spec?.persistent ? ['persistence true', `persistence_location ${workDir}/`, 'autosave_interval 1800'] : ['persistence false'];
      fs.writeFileSync(
        conf,
        [
          `listener ${port} 127.0.0.1`,
          'allow_anonymous true',
          ...persistence,
          'set_tcp_nodelay true',
          `max_inflight_messages ${inflight}`,
          'max_queued_messages 1000000',
          'max_queued_bytes 0',
          'max_connections -1',
          'connection_messages false',
          'log_dest stderr',
          'log_type error',
          'log_type warning',
          '',
        ].join('\n'),
      );
      fs.chmodSync(workDir, 0o755);
      fs.chmodSync(conf, 0o644);
      return { cmd: findMosquitto() ?? 'mosquitto', args: ['-c', conf], ready: 'port' };
    },
  };
}

/** Command line that raises the fd soft limit to the hard limit and execs `cmd` pinned to `core` (same PID). */
export function pinned(core: string | null, cmd: string, args: string[]): { cmd: string; args: string[] } {
  const pin = core === null ? 'exec "$@"' : `exec taskset -c ${core} "$@"`;
  return { cmd: 'bash', args: ['-c', `ulimit -n "$(ulimit -Hn)" 2>/dev/null; ${pin}`, 'bench-pinned', cmd, ...args] };
}

export function readRssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

let clkTck = 0;
function ticksPerSecond(): number {
  if (clkTck === 0) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    clkTck = Number(r.stdout.trim()) || 100;
  }
  return clkTck;
}

/** The fields of /proc/<pid>/stat after the command name (index 0 = state, 1 = ppid, 11 = utime, ...), or null. */
function statFields(pid: number): string[] | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** utime + stime of a process, in seconds. */
export function readCpuSeconds(pid: number): number {
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / ticksPerSecond() : 0;
}

/**
 * `root` and all its descendants, root first (parent links from /proc/<pid>/stat; this kernel has no
 * /proc/<pid>/task/<tid>/children). A broker with worker processes (iot-bridge --processes N: a
 * primary that forks its workers) spends its CPU in the children; a single-process broker is a tree of one.
 */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  let names: string[] = [];
  try {
    names = fs.readdirSync('/proc');
  } catch {
    return [root];
  }
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    const f = statFields(Number(n));
    if (!f) continue;
    const ppid = Number(f[1]);
    const list = children.get(ppid);
    if (list) list.push(Number(n));
    else children.set(ppid, [Number(n)]);
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]) ?? []));
  return out;
}

/**
 * CPU seconds of a whole process tree: utime + stime of `root` and every live descendant, plus the
 * cutime + cstime of each (the CPU of children that already exited and were waited for, e.g. a worker
 * that died and was started again), so the figure only grows and a delta covers the whole tree.
 * `kernelSeconds`: the part of it spent in the kernel (stime + cstime): system calls and, on loopback,
 * the TCP work of what the broker sends.
 */
export function readTreeCpuSeconds(root: number): { seconds: number; kernelSeconds: number; pids: number[]; byPid: Map<number, number> } {
  const pids = processTree(root);
  const byPid = new Map<number, number>();
  let ticks = 0;
  let kernelTicks = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    if (!f) continue;
    const kernel = Number(f[12]) + Number(f[14]);
    const t = Number(f[11]) + Number(f[13]) + kernel;
    ticks += t;
    kernelTicks += kernel;
    byPid.set(pid, t / ticksPerSecond());
  }
  return { seconds: ticks / ticksPerSecond(), kernelSeconds: kernelTicks / ticksPerSecond(), pids, byPid };
}

/** VmRSS summed over a process tree (pages shared between the processes, e.g. a shared LMDB map, count once per process). */
export function readTreeRssKiB(root: number): number {
  return processTree(root).reduce((sum, pid) => sum + readRssKiB(pid), 0);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class RunningBroker {
  readonly pid: number;
  private output: string[] = [];
  exitCode: number | null = null;
  exitSignal: string | null = null;
  exited = false;
  /** Descendants that outlived the started process by 2 s and were killed by stop(). */
  leftoversKilled: number[] = [];
  private readonly exitPromise: Promise<void>;

  constructor(readonly child: ChildProcess) {
    if (child.pid === undefined) throw new Error('spawn failed');
    this.pid = child.pid;
    this.exitPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exited = true;
        this.exitCode = code;
        this.exitSignal = signal;
        resolve();
      });
    });
  }

  /** Last lines of the broker's stdout/stderr, for error messages. */
  tail(): string {
    return this.output.slice(-8).join(' | ');
  }

  pushOutput(line: string): void {
    this.output.push(line);
    if (this.output.length > 50) this.output.shift();
  }

  waitExit(ms: number): Promise<boolean> {
    return Promise.race([this.exitPromise.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  }

  /**
   * SIGTERM, then SIGKILL after `graceMs`; only ever signals the PID this harness started and, when that
   * was a primary with worker processes, those of its descendants (noted before the SIGTERM, checked by
   * start time against PID reuse) that are still alive 2 s after it exited.
   */
  async stop(graceMs = 5000): Promise<void> {
    if (this.exited) return;
    const descendants = processTree(this.pid)
      .slice(1)
      .map((pid) => ({ pid, start: startTime(pid) }))
      .filter((d) => d.start !== null);
    this.child.kill('SIGTERM');
    if (!(await this.waitExit(graceMs))) {
      this.child.kill('SIGKILL');
      await this.waitExit(2000);
    }
    const alive = (): typeof descendants => descendants.filter((d) => startTime(d.pid) === d.start);
    for (let waited = 0; alive().length > 0 && waited < 2000; waited += 100) await new Promise((r) => setTimeout(r, 100));
    for (const d of alive()) {
      try {
        process.kill(d.pid, 'SIGKILL');
        this.leftoversKilled.push(d.pid);
      } catch {
        // already gone
      }
    }
  }
}

/** Start time of a process (clock ticks since boot), null when it does not exist (or is a zombie). */
function startTime(pid: number): string | null {
  const f = statFields(pid);
  return f && f[0] !== 'Z' ? f[19] : null;
}

export async function startBroker(def: BrokerDef, core: string | null, port: number, workDir: string, timeoutMs: number, spec?: CaseSpec): Promise<RunningBroker> {
  const l = def.launch(port, workDir, spec);
  const p = pinned(core, l.cmd, l.args);
  const child = spawn(p.cmd, p.args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const b = new RunningBroker(child);
  let sawListening = false;
  const onData = (buf: Buffer): void => {
    for (const line of buf.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      b.pushOutput(line.trim().slice(0, 300));
      if (/listening/i.test(line)) sawListening = true;
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (b.exited) throw new Error(`${def.label} exited before ready (code ${b.exitCode}, signal ${b.exitSignal}): ${b.tail()}`);
    if (l.ready === 'listening' ? sawListening : await canConnect(port)) return b;
    await new Promise((r) => setTimeout(r, 25));
  }
  await b.stop();
  throw new Error(`${def.label} not ready within ${timeoutMs} ms: ${b.tail()}`);
}

/** Busy and total jiffies per CPU from /proc/stat (busy = everything but idle and iowait). */
export function readCoreTimes(): Map<string, { busy: number; total: number }> {
  const out = new Map<string, { busy: number; total: number }>();
  try {
    for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const f = m[2].trim().split(/\s+/).map(Number);
      const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
      out.set(m[1], { busy: total - f[3] - f[4], total });
    }
  } catch {
    // not Linux: no per-core figures
  }
  return out;
}

/** Busy % of `core` between two readCoreTimes() snapshots. */
export function coreBusyPct(a: Map<string, { busy: number; total: number }>, b: Map<string, { busy: number; total: number }>, core: string | null): number {
  if (core === null) return 0;
  const x = a.get(core);
  const y = b.get(core);
  if (!x || !y || y.total <= x.total) return 0;
  return Math.round(((y.busy - x.busy) / (y.total - x.total)) * 1000) / 10;
}

/** TcpExt ListenOverflows (SYNs dropped because an accept queue was full), system-wide. */
export function readListenOverflows(): number {
  try {
    const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n');
    for (let i = 0; i + 1 < lines.length; i++) {
      if (!lines[i].startsWith('TcpExt:')) continue;
      const keys = lines[i].split(/\s+/);
      const vals = lines[i + 1].split(/\s+/);
      const k = keys.indexOf('ListenOverflows');
      return k >= 0 ? Number(vals[k]) : 0;
    }
  } catch {
    // not available
  }
  return 0;
}

/** CPU seconds (utime + stime) of every process on the machine, by PID. */
export function readAllCpuSeconds(): Map<number, number> {
  const out = new Map<number, number>();
  let names: string[] = [];
  try {
    names = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    const pid = Number(n);
    const s = readCpuSeconds(pid);
    if (s > 0) out.set(pid, s);
  }
  return out;
}

/** CPU used by every process except `exclude` between two readAllCpuSeconds() snapshots, in % of one core,
 * with the three biggest users ("java 80%"). */
export function othersCpu(a: Map<number, number>, b: Map<number, number>, exclude: number[], secs: number): { pct: number; top: string[] } {
  if (secs <= 0) return { pct: 0, top: [] };
  let sum = 0;
  const users: [number, number][] = [];
  for (const [pid, s] of b) {
    if (exclude.includes(pid)) continue;
    const d = s - (a.get(pid) ?? 0);
    if (d <= 0) continue;
    sum += d;
    users.push([pid, d]);
  }
  users.sort((x, y) => y[1] - x[1]);
  const top = users.slice(0, 3).map(([pid, d]) => {
    let comm = String(pid);
    try {
      comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      // exited
    }
    return `${comm} ${Math.round((d / secs) * 100)}%`;
  });
  return { pct: Math.round((sum / secs) * 1000) / 10, top };
}
