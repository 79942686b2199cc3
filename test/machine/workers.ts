// The embedded broker as several worker processes on this machine (`--processes N`), started as a
// real process with the CLI, and where each client landed (each worker's own admin API).
import http from 'node:http';
import type { IClientOptions, MqttClient } from 'mqtt';
import { connect, endClient, spawnBrokerOnFreePort, tempDir, type BrokerProcess } from '../helpers';

const TOKEN = 'machine-test-token';

export interface WorkerInfo {
  slot: number;
  pid: number;
  adminPort: number;
}

export class TestMachine {
  private constructor(
    readonly proc: BrokerProcess,
    readonly port: number,
    readonly workers: WorkerInfo[],
    readonly dataDir: string,
  ) {}

  /** The broker with `processes` workers, each with its admin API on `adminPort + slot`. */
  static async start(processes = 2, extra: string[] = [], dataDir = tempDir('iotb-machine-')): Promise<TestMachine> {
    const { proc } = await spawnBrokerOnFreePort((adminPort) => [
      '--host', '127.0.0.1', '--port', '0', '--processes', String(processes), '--data-dir', dataDir,
      '--admin-port', String(adminPort), '--admin-token', TOKEN, '--log-level', process.env.MACHINE_LOG_LEVEL ?? 'info', ...extra,
    ], 30_000);
    const line = proc.output.join('').split('\n').find((l) => l.includes('worker processes'));
    const workers = (JSON.parse(line!) as { workers: WorkerInfo[] }).workers;
    return new TestMachine(proc, proc.port, workers, dataDir);
  }

  /** The worker that holds the session of `clientId` now, or -1. */
  async workerOf(clientId: string): Promise<number> {
    return (await this.sessionOf(clientId))?.slot ?? -1;
  }

  /** The session of `clientId` as the worker holding it shows it (admin API), with that worker's number. */
  async sessionOf(clientId: string): Promise<{ slot: number; subscriptions: { filter: string }[] } | undefined> {
    for (const worker of this.workers) {
      const { status, body } = await get(worker.adminPort, `/api/v1/clients/${encodeURIComponent(clientId)}`);
      if (status === 200) return { slot: worker.slot, ...(JSON.parse(body) as { subscriptions: { filter: string }[] }) };
    }
    return undefined;
  }

  /**
   * Connects `options.clientId` on worker `slot`. The primary hands connections to the workers in
   * turn, so a throwaway probe connection tells where the next one goes; at most 20 tries. A try
   * of the client itself that still lands elsewhere is closed.
   */
  async connectOn(slot: number, options: IClientOptions, setup?: (client: MqttClient) => void): Promise<MqttClient> {
    for (let attempt = 0; attempt < 20; attempt++) {
      await this.nextGoesTo(slot);
      const client = await connect(this.port, options, setup);
      if ((await this.workerOf(options.clientId!)) === slot) return client;
      await endClient(client);
    }
    throw new Error(`${options.clientId} never landed on worker ${slot} in 20 tries`);
  }

  /** Opens throwaway connections until one lands on the other worker: the next one should go to `slot`. */
  async nextGoesTo(slot: number): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const probeId = `probe-${process.pid}-${this.probes++}`;
      const probe = await connect(this.port, { clientId: probeId });
      const probed = await this.workerOf(probeId);
      await endClient(probe);
      if (probed !== slot) return;
    }
    throw new Error(`every probe landed on worker ${slot}`);
  }

  private probes = 0;

  /** A worker's pid as the primary last reported it (it logs each restart with the new pid). */
  pidOf(slot: number): number {
    const restarts = this.restarts(slot);
    return restarts.length > 0 ? restarts[restarts.length - 1]! : this.workers.find((w) => w.slot === slot)!.pid;
  }

  /** The pids worker `slot` served again with after it died, in order. */
  restarts(slot: number): number[] {
    const lines = this.proc.output.join('').split('\n').filter((l) => l.includes(`"msg":"worker ${slot} serving again"`));
    return lines.map((l) => (JSON.parse(l) as { pid: number }).pid);
  }

  /** A worker's Prometheus metrics: `/metrics` (the machine's) or `/metrics/worker` (its own), as name{labels} → value. */
  async metrics(slot: number, path: '/metrics' | '/metrics/worker'): Promise<Map<string, number>> {
    const { status, body } = await get(this.workers.find((w) => w.slot === slot)!.adminPort, path);
    if (status !== 200) throw new Error(`${path} of worker ${slot}: ${status} ${body}`);
    const values = new Map<string, number>();
    for (const line of body.split('\n')) {
      const m = /^(\S+) (\S+)$/.exec(line);
      if (m && !line.startsWith('#')) values.set(m[1]!, Number(m[2]));
    }
    return values;
  }

  logs(): string {
    return this.proc.output.join('').slice(process.env.MACHINE_LOG_LEVEL === 'debug' ? -4_000_000 : -6000);
  }

  async stop(): Promise<void> {
    await this.proc.terminate();
  }
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}
