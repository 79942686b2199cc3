import cluster from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

/**
 * Metrics of the whole machine when the embedded broker runs as several workers
 * (docs/multi-process.md): any worker's `/metrics` answers with every worker's metrics summed (a
 * gauge every worker reports alike, such as retained messages, is their maximum). prom-client's
 * AggregatorRegistry does the collecting and summing; it asks the workers from the primary over
 * node:cluster's IPC, so a worker asks the primary, which asks them all.
 */

const REQUEST = 'iotb:machine-metrics';
/** How long a scrape waits for the primary's answer; prom-client gives the workers 5 s. */
const ANSWER_WAIT_MS = 6000;

interface MetricsRequest {
  type: typeof REQUEST;
  id: number;
}

interface MetricsAnswer {
  type: typeof REQUEST;
  id: number;
  body?: string;
  error?: string;
}

/** In the primary: answers workers' requests for the machine's metrics. */
export function serveMachineMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: MetricsRequest) => {
    if (message?.type !== REQUEST) return;
    const answer = (a: Omit<MetricsAnswer, 'type' | 'id'>): void => {
      if (worker.isConnected()) worker.send({ type: REQUEST, id: message.id, ...a } satisfies MetricsAnswer);
    };
    aggregator.clusterMetrics().then(
      (body) => answer({ body }),
      (e: Error) => answer({ error: e.message }),
    );
  });
}

/**
 * In a worker: hands `registry` to the primary when it collects, and returns how this worker asks
 * for the machine's metrics (the Prometheus text of every worker's registry, aggregated).
 */
export function machineMetrics(registry: Registry): () => Promise<string> {
  AggregatorRegistry.setRegistries([registry]);
  void new AggregatorRegistry(); // installs prom-client's answer to the primary's request
  const waiting = new Map<number, (a: MetricsAnswer) => void>();
  let nextId = 0;
  process.on('message', (message: MetricsAnswer) => {
    if (message?.type !== REQUEST) return;
    waiting.get(message.id)?.(message);
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => settle({ type: REQUEST, id, error: `no answer from the primary in ${ANSWER_WAIT_MS} ms` }), ANSWER_WAIT_MS);
      const settle = (a: MetricsAnswer): void => {
        clearTimeout(timer);
        waiting.delete(id);
        if (a.body !== undefined) resolve(a.body);
        else reject(new Error(`metrics of every worker not collected: ${a.error ?? 'no body'}`));
      };
      waiting.set(id, settle);
      process.send?.({ type: REQUEST, id } satisfies MetricsRequest);
    });
}
