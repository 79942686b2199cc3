import cluster, { type Worker } from 'node:cluster';
import fs from 'node:fs';
import os from 'node:os';
import type { Logger } from '../broker/options';
import type { Config } from '../ops/config';
import { serveMachineMetrics } from '../ops/machine-metrics';
import { OpenTurns } from './open-turns';

/**
 * Several worker processes on one machine (docs/multi-process.md). The primary does no MQTT: it
 * starts the workers (node:cluster, so they share the listening ports), starts one again when it
 * dies, and passes signals on. Each worker is a whole broker on a MachineStore.
 */

const SLOT_VARIABLE = 'IOTB_WORKER_SLOT';

/** This process's worker number when it is one of several on the machine; undefined otherwise. */
export function workerSlot(): number | undefined {
  const slot = process.env[SLOT_VARIABLE];
  return cluster.isWorker && slot !== undefined ? Number(slot) : undefined;
}

/** How many workers `processes` asks for: 0 means one per core. */
export function workerCount(config: Config): number {
  return config.processes === 0 ? os.availableParallelism() : config.processes;
}

/** What a worker tells the primary once it serves. */
export interface WorkerReady {
  ready: true;
  port: number;
  wsPort: number;
  tlsPort: number;
  adminPort: number;
}

const RESTART_DELAY_MS = 200;
const STOP_WAIT_MS = 12_000;

export function runPrimary(config: Config, log: Logger & { flush(): void }): void {
  const count = workerCount(config);
  fs.mkdirSync(config.dataDir, { recursive: true });
  const workers = new Map<number, Worker>();
  const ready = new Map<number, WorkerReady & { pid: number }>();
  let serving = false;
  let stopping = false;
  const turns = new OpenTurns(log);

  const start = (slot: number): void => {
    const worker = cluster.fork({ [SLOT_VARIABLE]: String(slot) });
    workers.set(slot, worker);
    worker.on('message', (message: WorkerReady) => {
      if (turns.onMessage(worker, message) || !message?.ready) return;
      ready.set(slot, { ...message, pid: worker.process.pid ?? 0 });
      if (serving) {
        log.info({ slot, pid: worker.process.pid }, `worker ${slot} serving again`);
        return;
      }
      if (ready.size < count) return;
      serving = true;
      const first = ready.get(0)!;
      const list = [...ready.entries()].sort(([a], [b]) => a - b).map(([s, w]) => ({ slot: s, pid: w.pid, adminPort: w.adminPort || undefined }));
      log.info(
        { pid: process.pid, port: first.port, wsPort: first.wsPort || undefined, tlsPort: first.tlsPort || undefined, store: 'lmdb', dataDir: config.dataDir, durability: config.durability, workers: list },
        `iot-bridge listening on ${config.host}:${first.port} with ${count} worker processes`,
      );
    });
    worker.on('exit', (code, signal) => {
      turns.onExit(worker);
      if (workers.get(slot) === worker) workers.delete(slot);
      ready.delete(slot);
      if (stopping) {
        if (workers.size === 0) exit();
        return;
      }
      if (!serving) {
        log.error({ slot, code, signal }, 'a worker could not start: stopping');
        stop('worker failed', 1);
        return;
      }
      log.error({ slot, pid: worker.process.pid, code, signal }, `worker ${slot} died: starting it again`);
      setTimeout(() => !stopping && start(slot), RESTART_DELAY_MS);
    });
  };

  let exitCode = 0;
  const exit = (): void => {
    log.info({}, 'stopped');
    log.flush();
    process.exit(exitCode);
  };
  const stop = (why: string, code = 0): void => {
    if (stopping) return;
    stopping = true;
    exitCode = code;
    log.info({ signal: why }, 'shutting down');
    for (const worker of workers.values()) worker.process.kill('SIGTERM');
    if (workers.size === 0) exit();
    setTimeout(() => {
      log.error({}, `workers still running after ${STOP_WAIT_MS} ms: killing them`);
      for (const worker of workers.values()) worker.process.kill('SIGKILL');
      process.exit(1);
    }, STOP_WAIT_MS).unref();
  };

  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    for (const worker of workers.values()) worker.process.kill('SIGHUP');
  });
  serveMachineMetrics();
  for (let slot = 0; slot < count; slot++) start(slot);
}
