// Benchmark orchestrator: `npm run bench [-- --quick] [--brokers a,b] [--cases substr,...] [--iot-cli path]`;
// `npm run bench -- --cluster [--quick]` runs bench/cluster.ts instead.
// Starts each broker in turn (pinned to one core), runs every case against it with the generator
// pinned to the other core, and writes bench/results/<timestamp>.jsonl, latest.md and latest.png.
import { runBridgeBench } from './bridge';
import { runClusterBench } from './cluster';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  REPO_ROOT,
  SCALING_CASES,
  aedes,
  bareNode,
  coreBusyPct,
  ensureMosquitto,
  othersCpu,
  readAllCpuSeconds,
  freePort,
  iotBridge,
  mosquitto,
  pinned,
  readCoreTimes,
  readListenOverflows,
  readTreeCpuSeconds,
  readTreeRssKiB,
  startBroker,
  type BrokerDef,
  type RunningBroker,
} from './brokers';
import { WINDOW, buildCases, caseBoundMs, medianRun, sweepVerdict } from './cases';
import { CONTENDED_PCT, contentionPct, writeReports } from './report';
import type { CaseSpec, GeneratorResult, ParentToWorker, ResultLine, WorkerToParent } from './types';

interface Options {
  quick: boolean;
  brokers: string[] | null;
  cases: string[] | null;
  iotCli: string;
  outDir: string;
  retries: number;
  ackBatchMs: number | null;
}

function usage(): never {
  process.stdout.write(
    [
      'usage: npm run bench -- [--quick] [--brokers iot-bridge,iot-bridge-relaxed,iot-bridge-2p,aedes,mosquitto,bare-node] [--cases p2p,fanout,...]',
      '                        [--iot-cli dist/src/cli.js] [--out bench/results]',
      '  --quick     reduced matrix and shorter windows (< 2 minutes)',
      '  iot-bridge-2p is iot-bridge with --processes 2 (a primary and two workers, all on the broker core); without',
      `              --cases it runs only ${SCALING_CASES.join(', ')} (its efficiency against one process)`,
      '  --retries N rerun a case up to N times (default 1, max 5) when other processes used the CPU during its window;',
      '              the least contended attempt is kept (within the time budget)',
      '  --ack-batch-ms N  generator batches its acks per connection for N ms (default 0 = write each at once)',
      '  --iot-cli   the iot-bridge CLI to start (default dist/src/cli.js); any program honouring the same',
      '              contract works, e.g. dist/bench/peers/aedes-server.js to test the wiring',
      '',
    ].join('\n'),
  );
  process.exit(0);
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    quick: false,
    brokers: null,
    cases: null,
    iotCli: path.join(REPO_ROOT, 'dist', 'src', 'cli.js'),
    outDir: path.join(REPO_ROOT, 'bench', 'results'),
    retries: 1,
    ackBatchMs: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--brokers') o.brokers = val().split(',').filter(Boolean);
    else if (a === '--cases') o.cases = val().split(',').filter(Boolean);
    else if (a === '--iot-cli') o.iotCli = path.resolve(val());
    else if (a === '--out') o.outDir = path.resolve(val());
    else if (a === '--ack-batch-ms') o.ackBatchMs = Math.max(0, Math.min(10, Number(val()) || 0));
    else if (a === '--retries') o.retries = Math.max(0, Math.min(5, Number(val()) || 0));
    else if (a === '--help' || a === '-h') usage();
    else throw new Error(`unknown argument ${a} (try --help)`);
  }
  return o;
}

const log = (m: string): void => {
  process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
};

interface Cores {
  broker: string | null;
  generator: string | null;
}

/** Broker on core 0, generator (and this orchestrator) on core 1, when there are two cores and taskset. */
function pickCores(): Cores {
  const hasTaskset = spawnSync('bash', ['-c', 'command -v taskset'], { encoding: 'utf8' }).status === 0;
  if (!hasTaskset) {
    log('WARNING: taskset not found; brokers and generator are NOT pinned');
    return { broker: null, generator: null };
  }
  if (os.cpus().length < 2) {
    log('WARNING: fewer than 2 CPUs; brokers and generator share the only core');
    return { broker: '0', generator: '0' };
  }
  spawnSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' });
  return { broker: '0', generator: '1' };
}

interface CaseRun {
  gen: GeneratorResult | null;
  errors: string[];
  brokerCpuPct: number;
  /** Broker CPU seconds (whole process tree) in the measured window, and that window's length. */
  brokerCpuSeconds: number;
  brokerWindowMs: number;
  /** The kernel's part of brokerCpuPct. */
  brokerKernelCpuPct: number;
  /** Processes in the broker's tree at the end of the window, and the CPU of each (% of one core, the started one first). */
  brokerProcesses: number;
  brokerCpuPctByProcess: number[];
  brokerCoreBusyPct: number;
  generatorCoreBusyPct: number;
  othersCpuPct: number;
  othersTop: string[];
  listenOverflows: number;
  rssPeakKiB: number;
  rssConnectedKiB?: number;
}

/**
 * Runs one case: spawns the pinned generator worker, samples the broker's /proc while it runs. The
 * broker's CPU and RSS are those of its whole process tree (the started PID and its descendants).
 */
async function runGenerator(spec: CaseSpec, port: number, broker: RunningBroker, cores: Cores): Promise<CaseRun> {
  const worker = path.join(REPO_ROOT, 'dist', 'bench', 'generator', 'worker.js');
  const p = pinned(cores.generator, process.execPath, [worker]);
  const child = spawn(p.cmd, p.args, { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const run: CaseRun = {
    gen: null,
    errors: [],
    brokerCpuPct: 0,
    brokerCpuSeconds: 0,
    brokerKernelCpuPct: 0,
    brokerWindowMs: 0,
    brokerProcesses: 1,
    brokerCpuPctByProcess: [],
    brokerCoreBusyPct: 0,
    generatorCoreBusyPct: 0,
    othersCpuPct: 0,
    othersTop: [],
    listenOverflows: 0,
    rssPeakKiB: readTreeRssKiB(broker.pid),
  };
  let cpu0 = readTreeCpuSeconds(broker.pid);
  let cores0 = readCoreTimes();
  let procs0 = readAllCpuSeconds();
  const overflows0 = readListenOverflows();
  let t0 = Date.now();
  const windowEnd = (): void => {
    const secs = (Date.now() - t0) / 1000;
    const cpu1 = readTreeCpuSeconds(broker.pid);
    run.brokerCpuSeconds = Math.max(0, cpu1.seconds - cpu0.seconds);
    run.brokerWindowMs = secs * 1000;
    run.brokerProcesses = cpu1.pids.length;
    run.brokerCpuPctByProcess = cpu1.pids.map((pid) => (secs > 0 ? Math.round((((cpu1.byPid.get(pid) ?? 0) - (cpu0.byPid.get(pid) ?? 0)) / secs) * 1000) / 10 : 0));
    run.brokerCpuPct = secs > 0 ? Math.round((run.brokerCpuSeconds / secs) * 1000) / 10 : 0;
    run.brokerKernelCpuPct = secs > 0 ? Math.round((Math.max(0, cpu1.kernelSeconds - cpu0.kernelSeconds) / secs) * 1000) / 10 : 0;
    const cores1 = readCoreTimes();
    run.brokerCoreBusyPct = coreBusyPct(cores0, cores1, cores.broker);
    run.generatorCoreBusyPct = coreBusyPct(cores0, cores1, cores.generator);
    const brokerPids = [...new Set([...cpu0.pids, ...cpu1.pids])];
    const others = othersCpu(procs0, readAllCpuSeconds(), [...brokerPids, child.pid ?? -1, process.pid], secs);
    run.othersCpuPct = others.pct;
    run.othersTop = others.top;
  };
  const sampler = setInterval(() => {
    run.rssPeakKiB = Math.max(run.rssPeakKiB, readTreeRssKiB(broker.pid));
  }, 200);
  const bound = caseBoundMs(spec);
  await new Promise<void>((resolve) => {
    let finished = false;
    const done = (err?: string): void => {
      if (err) run.errors.push(err);
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      done(`generator exceeded the case bound of ${bound} ms and was killed`);
    }, bound);
    child.on('message', (m: WorkerToParent) => {
      switch (m.type) {
        case 'measure-start':
          cpu0 = readTreeCpuSeconds(broker.pid);
          cores0 = readCoreTimes();
          procs0 = readAllCpuSeconds();
          t0 = Date.now();
          break;
        case 'measure-end':
          windowEnd();
          break;
        case 'connected': {
          windowEnd();
          // Let the broker settle, then read its RSS with every connection open.
          setTimeout(() => {
            run.rssConnectedKiB = readTreeRssKiB(broker.pid);
            run.rssPeakKiB = Math.max(run.rssPeakKiB, run.rssConnectedKiB);
            const msg: ParentToWorker = { type: 'release' };
            child.send(msg);
          }, 500);
          break;
        }
        case 'log':
          log(`  generator: ${m.msg}`);
          break;
        case 'result':
          run.gen = m.result;
          break;
        case 'fatal':
          run.errors.push(`generator crashed: ${m.error}`);
          break;
      }
    });
    child.on('exit', (code, signal) => {
      if (!run.gen) done(`generator exited (code ${code}, signal ${signal}) without a result`);
      else done();
    });
    child.on('error', (e) => done(`generator spawn failed: ${e.message}`));
    const msg: ParentToWorker = { type: 'run', spec, host: '127.0.0.1', port };
    child.send(msg);
  });
  clearInterval(sampler);
  run.listenOverflows = readListenOverflows() - overflows0;
  return run;
}

/** Starts and stops the broker once, so a broker that cannot start is skipped with its reason. */
async function probe(def: BrokerDef, cores: Cores): Promise<string | null> {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `iot-bench-${def.name}-`));
  try {
    const b = await startBroker(def, cores.broker, await freePort(), workDir, 20_000);
    await b.stop();
    return null;
  } catch (e) {
    const why = (e as Error).message;
    return def.name === 'iot-bridge-relaxed'
      ? `${def.label} skipped: the broker does not start with --durability relaxed (${why})`
      : `${def.label} skipped: failed to start (${why})`;
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

/** One attempt at one case: fresh broker, pinned generator, /proc sampling. Fills `line`. */
async function attemptCase(def: BrokerDef, spec: CaseSpec, cores: Cores, line: ResultLine): Promise<{ startFailed: boolean }> {
  let startFailed = false;
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `iot-bench-${def.name}-`));
  let broker: RunningBroker | null = null;
  try {
    const port = await freePort();
    broker = await startBroker(def, cores.broker, port, workDir, 20_000, spec);
    const rssStart = readTreeRssKiB(broker.pid);
    const run = await runGenerator(spec, port, broker, cores);
    const rssEnd = readTreeRssKiB(broker.pid);
    const diedDuringCase = broker.exited;
    await broker.stop();
    line.errors.push(...run.errors);
    if (diedDuringCase) line.errors.push(`broker exited during the case (code ${broker.exitCode}, signal ${broker.exitSignal}): ${broker.tail()}`);
    else if (broker.exitCode !== 0 && broker.exitSignal !== 'SIGTERM') line.errors.push(`broker did not exit 0 on SIGTERM (code ${broker.exitCode}, signal ${broker.exitSignal})`);
    if (broker.leftoversKilled.length > 0) line.errors.push(`broker processes ${broker.leftoversKilled.join(', ')} outlived the broker's exit by 2 s and were killed`);
    line.brokerStats = {
      cpuPct: run.brokerCpuPct,
      cpuSeconds: Math.round(run.brokerCpuSeconds * 1000) / 1000,
      windowMs: Math.round(run.brokerWindowMs),
      kernelCpuPct: run.brokerKernelCpuPct,
      processes: run.brokerProcesses,
      ...(run.brokerProcesses > 1 ? { cpuPctByProcess: run.brokerCpuPctByProcess } : {}),
      brokerCoreBusyPct: run.brokerCoreBusyPct,
      generatorCoreBusyPct: run.generatorCoreBusyPct,
      othersCpuPct: run.othersCpuPct,
      othersTop: run.othersTop,
      listenOverflows: run.listenOverflows,
      rssStartKiB: rssStart,
      rssPeakKiB: run.rssPeakKiB,
      rssEndKiB: rssEnd,
      exitCode: broker.exitCode,
      exitSignal: broker.exitSignal,
    };
    if (run.gen) {
      line.generator = run.gen;
      line.throughput = spec.scenario === 'connect' ? run.gen.connect?.perSec ?? 0 : run.gen.deliveredPerSec;
      if (spec.scenario === 'connect' && run.rssConnectedKiB !== undefined && run.gen.connect && run.gen.connect.connected > 0) {
        line.brokerStats.rssConnectedKiB = run.rssConnectedKiB;
        line.brokerStats.rssPerConnKiB = Math.round(((run.rssConnectedKiB - rssStart) / run.gen.connect.connected) * 100) / 100;
      }
    }
    line.ok = run.gen !== null && run.gen.correctness.violations.length === 0 && line.errors.length === 0;
    const verdict = sweepVerdict(spec, line.ok, run.gen ?? undefined);
    if (verdict) line.sweep = verdict;
    const g = run.gen;
    const summary = !g
      ? 'no result'
      : spec.scenario === 'connect'
        ? `${g.connect?.perSec ?? 0} conn/s, ${line.brokerStats.rssPerConnKiB ?? '?'} KiB/conn`
        : `${g.deliveredPerSec} msg/s, p50 ${g.latency.p50Ms} ms p99 ${g.latency.p99Ms} ms, lost ${g.correctness.lost} dup ${g.correctness.duplicates} ooo ${g.correctness.outOfOrder}`;
    log(
      `  ${def.label} ${spec.id}: ${summary}; gen cpu ${g?.generatorCpuPct ?? 0}%, broker cpu ${run.brokerCpuPct}% (kernel ${run.brokerKernelCpuPct}%)${run.brokerProcesses > 1 ? ` (${run.brokerProcesses} processes: ${run.brokerCpuPctByProcess.map((p) => `${p}%`).join(' + ')})` : ''}` +
        `${spec.scenario !== 'connect' && g && run.brokerCpuSeconds > 0 ? `, ${Math.round(g.deliveredPerSec / (run.brokerCpuSeconds / (run.brokerWindowMs / 1000)))} msg/CPU-s` : ''}, others ${contentionPct(line)}%${run.othersTop.length ? ` (${run.othersTop.join(', ')})` : ''}` +
        (line.ok ? '' : `  FAILED: ${[...(g?.correctness.violations ?? []), ...line.errors].join('; ')}`) +
        (line.sweep ? (line.sweep.sustained ? '  sustained' : `  not sustained: ${line.sweep.why}`) : ''),
    );
  } catch (e) {
    line.errors.push((e as Error).message);
    log(`  ${def.label} ${spec.id}: ERROR ${(e as Error).message}`);
    if (broker === null) startFailed = true;
  } finally {
    if (broker) await broker.stop();
    fs.rmSync(workDir, { recursive: true, force: true });
  }
  return { startFailed };
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const budgetMs = opts.quick ? 210_000 : 900_000;
  const cores = pickCores();
  fs.mkdirSync(opts.outDir, { recursive: true });

  let cases = buildCases(opts.quick);
  if (opts.cases) cases = cases.filter((c) => opts.cases?.some((s) => c.id.includes(s)));
  if (opts.ackBatchMs !== null) cases = cases.map((c) => ({ ...c, ackBatchMs: opts.ackBatchMs ?? c.ackBatchMs }));

  const mosquittoMissing = ensureMosquitto(log);
  const all: BrokerDef[] = [iotBridge(opts.iotCli, false), iotBridge(opts.iotCli, true), iotBridge(opts.iotCli, false, 2), aedes(), mosquitto(WINDOW), bareNode()];
  const brokers = all.filter((b) => !opts.brokers || opts.brokers.includes(b.name));

  const runId = new Date().toISOString().replace(/[:.]/g, '-');
  const jsonl = path.join(opts.outDir, `${runId}.jsonl`);
  const cpus = os.cpus();
  const host: ResultLine['host'] = {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? '?',
    node: process.version,
    brokerCore: cores.broker ?? 'unpinned',
    generatorCore: cores.generator ?? 'unpinned',
  };
  const lines: ResultLine[] = [];
  const emit = (l: ResultLine): void => {
    lines.push(l);
    fs.appendFileSync(jsonl, `${JSON.stringify(l)}\n`);
  };

  const load = os.loadavg()[0];
  if (load > 0.5) log(`WARNING: load average ${load.toFixed(2)} before the run: other processes compete for the cores; cases where they did are marked ‡`);
  log(`run ${runId}: ${cases.length} cases x ${brokers.length} brokers${opts.quick ? ' (quick)' : ''}; results -> ${path.relative(REPO_ROOT, jsonl)}`);
  let attemptsMade = 0;
  const inMatrix = (def: BrokerDef, spec: CaseSpec): boolean => !def.defaultCases || opts.cases !== null || def.defaultCases.includes(spec.id);
  let casesLeft = brokers.reduce((n, def) => n + cases.filter((spec) => inMatrix(def, spec)).length, 0);
  for (const def of brokers) {
    let skip = def.unavailable();
    if (!skip && def.name === 'mosquitto' && mosquittoMissing) skip = mosquittoMissing;
    if (!skip) skip = await probe(def, cores);
    const version = skip ? '' : def.version();
    if (skip) log(`${def.label}: ${skip}`);
    else log(`${def.label} ${version}`);
    let failedStarts = 0;
    /** Sweep groups this broker stopped sustaining, with the step and reason: its higher steps are skipped. */
    const sweepEnded = new Map<string, string>();
    for (const spec of cases) {
      const line: ResultLine = {
        runId,
        time: new Date().toISOString(),
        quick: opts.quick,
        host,
        broker: def.name,
        brokerLabel: def.label,
        brokerVersion: version,
        caseId: spec.id,
        scenario: spec.scenario,
        qos: spec.qos,
        payloadBytes: spec.payloadBytes,
        throughput: 0,
        throughputUnit: spec.scenario === 'connect' ? 'conn/s' : 'msg/s',
        ok: false,
        errors: [],
      };
      if (!skip && Date.now() - started + caseBoundMs(spec) / 3 > budgetMs) {
        line.skipped = `time budget of ${budgetMs / 1000} s exhausted`;
      }
      if (skip) line.skipped = skip;
      if (!line.skipped && def.onlyScenarios && !def.onlyScenarios.includes(spec.scenario)) line.skipped = def.onlyWhy ?? 'not run';
      if (!line.skipped && !inMatrix(def, spec)) line.skipped = def.defaultCasesWhy ?? 'not run';
      const ended = spec.sweep ? sweepEnded.get(spec.sweep.group) : undefined;
      if (!line.skipped && ended) line.skipped = `above the sustainable rate (${ended})`;
      if (inMatrix(def, spec)) casesLeft--;
      if (line.skipped) {
        emit(line);
        continue;
      }
      const runs: ResultLine[] = [];
      for (let run = 0; run < (spec.repeats ?? 1); run++) {
        let attempt = 0;
        let best: ResultLine | null = null;
        let confirming: string | undefined;
        for (;;) {
          const tryLine: ResultLine = { ...line, errors: [], time: new Date().toISOString() };
          const { startFailed } = await attemptCase(def, spec, cores, tryLine);
          attemptsMade++;
          if (startFailed) failedStarts++;
          tryLine.attempts = attempt + 1;
          const others = contentionPct(tryLine);
          if (confirming !== undefined) {
            // The confirmation run of a missed sweep step decides it, whichever way it goes.
            if (tryLine.sweep?.sustained) tryLine.sweep.firstRunMissed = confirming;
            best = tryLine;
            break;
          }
          if (best === null || others < contentionPct(best)) best = tryLine;
          // A sweep step that one run missed on latency or drain (correct, not contended) runs once
          // more, for every broker alike: one spike should not end a broker's sweep a step early.
          if (others <= CONTENDED_PCT && !startFailed && tryLine.ok && tryLine.sweep && !tryLine.sweep.sustained) {
            confirming = tryLine.sweep.why ?? 'missed';
            attempt++;
            log(`  ${def.label} ${spec.id}: not sustained (${confirming}); running the step once more to confirm`);
            continue;
          }
          if (others <= CONTENDED_PCT || attempt >= opts.retries || startFailed) break;
          // Retry only while ahead of schedule: the remaining cases must still fit in the budget.
          const elapsed = Date.now() - started;
          const perAttempt = elapsed / Math.max(1, attemptsMade);
          if (elapsed + perAttempt * (casesLeft + 1) > budgetMs * 0.9) break;
          attempt++;
          log(`  ${def.label} ${spec.id}: something else used ${others}% CPU during the window; retrying (${attempt}/${opts.retries})`);
        }
        runs.push({ ...best!, attempts: attempt + 1 });
        if (!best!.ok) break; // a failed run decides the case
      }
      Object.assign(line, medianRun(runs));
      if (runs.length > 1) {
        line.runs = runs.map((r) => ({ p50Ms: r.generator?.latency.p50Ms ?? 0, p99Ms: r.generator?.latency.p99Ms ?? 0, maxMs: r.generator?.latency.maxMs ?? 0 }));
        log(`  ${def.label} ${spec.id}: p99 of the ${runs.length} runs ${line.runs.map((r) => r.p99Ms).join(' / ')} ms; the median run counts`);
      }
      emit(line);
      if (line.sweep && !line.sweep.sustained) sweepEnded.set(line.sweep.group, `${spec.id}: ${line.sweep.why}`);
      if (failedStarts >= 2) {
        // A broker that cannot start is not retried for every case.
        skip = `${def.label} failed to start: ${line.errors[line.errors.length - 1] ?? ''}`;
        log(`${def.label}: skipping its remaining cases (${skip})`);
      }
    }
  }

  const r = writeReports(lines, opts.outDir);
  log(`wrote ${path.relative(REPO_ROOT, jsonl)}, ${path.relative(REPO_ROOT, r.md)}, ${r.png ? path.relative(REPO_ROOT, r.png) : `no PNG (${r.pngError})`}`);
  const failed = lines.filter((l) => !l.skipped && !l.ok);
  log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s; ${lines.filter((l) => l.ok).length} ok, ${failed.length} failed, ${lines.filter((l) => l.skipped).length} skipped`);
  process.stdout.write(`\n${fs.readFileSync(r.md, 'utf8')}\n`);
  if (failed.length > 0) {
    // A figure from a case that lost, duplicated (QoS 2) or reordered messages must not be quoted,
    // so the run as a whole fails and says which cases did.
    for (const l of failed) {
      const why = [...(l.generator?.correctness.violations ?? []), ...l.errors].join('; ') || 'no result';
      process.stderr.write(`bench: FAILED ${l.brokerLabel} ${l.caseId}: ${why}\n`);
    }
    process.exitCode = 1;
  }
}

// `--cluster`: cluster mode beside the embedded broker (bench/cluster.ts), instead of the peers.
// `--bridge`: the bridge's uplink and downlink throughput and latency (bench/bridge.ts).
const quickRun = process.argv.includes('--quick');
const entry = process.argv.includes('--cluster')
  ? () => runClusterBench(quickRun)
  : process.argv.includes('--bridge')
    ? () => runBridgeBench(quickRun)
    : main;
entry().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
