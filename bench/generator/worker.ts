// Generator worker: the orchestrator spawns it pinned to the generator core, sends one `run`
// message over IPC, and gets progress and the result back. One case per process.
import type { ParentToWorker, WorkerToParent } from '../types';
import { Engine } from './engine';

function send(m: WorkerToParent): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(m, undefined, {}, () => resolve());
  });
}

let release: (() => void) | null = null;

process.on('message', (m: ParentToWorker) => {
  if (m.type === 'release') {
    release?.();
    return;
  }
  if (m.type !== 'run') return;
  const engine = new Engine(m.spec, m.host, m.port, {
    onMeasureStart: () => void send({ type: 'measure-start' }),
    onMeasureEnd: () => void send({ type: 'measure-end' }),
    onConnected: (connected) =>
      new Promise<void>((resolve) => {
        release = resolve;
        void send({ type: 'connected', connected });
      }),
    log: (msg) => void send({ type: 'log', msg }),
  });
  engine
    .run()
    .then((result) => send({ type: 'result', result }))
    .catch((e: unknown) => send({ type: 'fatal', error: e instanceof Error ? e.stack ?? e.message : String(e) }))
    .finally(() => process.exit(0));
});

if (!process.send) {
  process.stderr.write('generator worker: must be started by bench/run with an IPC channel\n');
  process.exit(2);
}
