// `npm run bench -- --cluster`: cluster mode side by side with the embedded broker, in one run.
// Starts its own RocketMQ (.rocketmq/bench-cluster), two cluster nodes and one embedded broker,
// and drives p2p QoS 1 and QoS 2 with the benchmark's generator: publishers on node 1 and
// subscribers on node 2 (cross-node), the same on one node, and the embedded broker. Prints a
// table, writes bench/results/cluster-latest.md. Every process it starts, it stops by its PID.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pickFreePorts, startLocalRocketMQ, stopLocalRocketMQ } from '../scripts/rocketmq/local-rocketmq';
import { REPO_ROOT, freePort, readTreeCpuSeconds } from './brokers';
import { Engine } from './generator/engine';
import type { CaseSpec, GeneratorResult, QoS } from './types';

const CLI = path.join(REPO_ROOT, 'dist', 'src', 'cli.js');
const log = (m: string) => process.stderr.write(`[bench:cluster ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

export interface Proc {
  name: string;
  child: ChildProcess;
  port: number;
}

/** Starts `iot-bridge start` with `args`; its warnings and errors go to `<logDir>/<name>.log`. */
export function startNode(name: string, args: string[], logDir = path.join(REPO_ROOT, '.rocketmq', 'bench-cluster')): Promise<Proc> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'start', '--host', '127.0.0.1', '--port', '0', '--log-level', 'info', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not start within 60 s:\n${out}`));
    }, 60_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /listening on [^:]+:(\d+)/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      // Its log, for what went wrong: warnings and errors only.
      const file = fs.createWriteStream(path.join(logDir, `${name}.log`));
      child.stdout!.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString().split('\n')) if (/"level":[456]0/.test(line)) file.write(`${line}\n`);
      });
      resolve({ name, child, port: Number(m[1]) });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}:\n${out}`));
    });
  });
}

/** Prints a result table and writes it to bench/results/<file>. */
export function writeTable(file: string, table: string, log: (m: string) => void): void {
  process.stdout.write(`\n${table}\n`);
  const out = path.join(REPO_ROOT, 'bench', 'results', file);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, table);
  log(`written ${path.relative(REPO_ROOT, out)}`);
}

export async function stop(proc: Proc): Promise<void> {
  if (proc.child.exitCode !== null) return;
  const exited = new Promise((r) => proc.child.once('exit', r));
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

function spec(qos: QoS, quick: boolean, pairs: number): CaseSpec {
  return {
    id: `p2p-qos${qos}-64B`,
    scenario: 'p2p',
    qos,
    payloadBytes: 64,
    publishers: pairs,
    subscribers: pairs,
    window: 16,
    ratePerPublisher: 0,
    warmupMs: quick ? 500 : 1000,
    measureMs: quick ? 2000 : 5000,
    drainMs: 20_000,
    // RocketMQ re-checks held long polls every 5 s; a wake-up it misses delays a delivery that long.
    drainIdleMs: 12_000,
    maxMessagesPerPublisher: 2_000_000,
    stallMs: 10_000,
    setupTimeoutMs: 60_000,
    connectConcurrency: 20,
    ackBatchMs: 0,
    connections: 0,
  };
}

interface Row {
  target: string;
  result: GeneratorResult;
  cpu: Record<string, number>;
}

export async function runClusterBench(quick: boolean): Promise<void> {
  const pairs = Number(process.env.BENCH_CLUSTER_PAIRS ?? 20);
  const workDir = path.join(REPO_ROOT, '.rocketmq', 'bench-cluster');
  await stopLocalRocketMQ(workDir);
  fs.rmSync(workDir, { recursive: true, force: true });
  const { namesrvPort, brokerPort } = await pickFreePorts(27876, 28911, 1);
  const procs: Proc[] = [];
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'iotb-bench-cluster-'));
  try {
    const rocketmq = await startLocalRocketMQ({ workDir, namesrvPort, brokers: [{ name: 'broker-a', port: brokerPort }], log });
    const pidFile = JSON.parse(fs.readFileSync(path.join(workDir, 'pids.json'), 'utf8')) as { processes: { role: string; pid: number }[] };
    const rocketPids = pidFile.processes.map((p) => ({ name: `rocketmq ${p.role}`, pid: p.pid }));
    const clusterArgs = ['--cluster', '--namesrv', rocketmq.namesrvAddr, '--cluster-name', `bench${Date.now().toString(36)}`];
    const node1 = await startNode('node-1', [...clusterArgs, '--node-id', 'node-1', '--admin-port', String(await freePort())]);
    procs.push(node1);
    const node2 = await startNode('node-2', [...clusterArgs, '--node-id', 'node-2', '--admin-port', String(await freePort())]);
    procs.push(node2);
    const embedded = await startNode('embedded', ['--data-dir', dataDir]);
    procs.push(embedded);

    const rows: Row[] = [];
    for (const qos of [1, 2] as QoS[]) {
      for (const [target, pubPort, subPort, watched] of [
        ['embedded (LMDB, strict)', embedded.port, embedded.port, [embedded]],
        ['cluster, one node', node1.port, node1.port, [node1]],
        ['cluster, across two nodes', node1.port, node2.port, [node1, node2]],
      ] as const) {
        const pids = [...watched.map((p) => ({ name: p.name, pid: p.child.pid! })), ...(target.startsWith('cluster') ? rocketPids : [])];
        let before = new Map<string, number>();
        const cpu: Record<string, number> = {};
        let startedAt = 0;
        const engine = new Engine(
          spec(qos, quick, pairs),
          '127.0.0.1',
          pubPort,
          {
            onMeasureStart: () => {
              startedAt = Date.now();
              before = new Map(pids.map((p) => [p.name, readTreeCpuSeconds(p.pid).seconds]));
            },
            onMeasureEnd: () => {
              const secs = (Date.now() - startedAt) / 1000;
              for (const p of pids) cpu[p.name] = Math.round(((readTreeCpuSeconds(p.pid).seconds - (before.get(p.name) ?? 0)) / secs) * 100);
            },
          },
          subPort,
        );
        log(`${target}: p2p QoS ${qos}, ${pairs} pairs, window 16`);
        const result = await engine.run();
        rows.push({ target, result, cpu });
        for (const problem of [...result.correctness.violations, ...result.errors]) log(`  ! ${problem}`);
        const c = result.correctness;
        log(
          `  ${Math.round(result.deliveredPerSec)} msg/s, p50 ${result.latency.p50Ms.toFixed(2)} ms, p99 ${result.latency.p99Ms.toFixed(2)} ms, ` +
            `lost ${c.lost} dup ${c.duplicates} ooo ${c.outOfOrder}; cpu ${JSON.stringify(cpu)}`,
        );
      }
    }
    const table = [
      `Cluster benchmark ${new Date().toISOString()} (${quick ? 'quick' : 'full'}): p2p, ${pairs} publisher/subscriber pairs, 64 B, window 16 per publisher.`,
      `One machine: ${os.cpus().length} CPUs shared by RocketMQ (namesrv + broker, SYNC_FLUSH), the nodes and the generator; nothing is pinned.`,
      '',
      '| QoS | target | delivered msg/s | p50 ms | p99 ms | lost / dup / out of order | CPU % of one core (measured window) |',
      '|---|---|---:|---:|---:|---|---|',
      ...rows.map((r) => {
        const c = r.result.correctness;
        const cpu = Object.entries(r.cpu).map(([k, v]) => `${k} ${v}`).join(', ');
        return `| ${r.result.qos} | ${r.target} | ${Math.round(r.result.deliveredPerSec).toLocaleString('en-US')} | ${r.result.latency.p50Ms.toFixed(2)} | ${r.result.latency.p99Ms.toFixed(2)} | ${c.lost} / ${c.duplicates} / ${c.outOfOrder} | ${cpu} |`;
      }),
      '',
    ].join('\n');
    writeTable('cluster-latest.md', table, log);
    const failed = rows.filter((r) => r.result.correctness.violations.length > 0 || r.result.errors.length > 0);
    for (const r of failed) process.stderr.write(`bench: FAILED ${r.target} QoS ${r.result.qos}: ${[...r.result.correctness.violations, ...r.result.errors].join('; ')}\n`);
    if (failed.length > 0) process.exitCode = 1;
  } finally {
    for (const p of procs.reverse()) await stop(p);
    await stopLocalRocketMQ(workDir, log);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
