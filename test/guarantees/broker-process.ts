import { spawnBroker, tempDir, type BrokerProcess } from '../helpers';

/**
 * The broker CLI as a child process on 127.0.0.1, on a data dir that survives restarts,
 * for the tests that kill -9 it. `stop` kills the process this helper started, by its PID.
 */
export class BrokerOnDisk {
  proc: BrokerProcess | null = null;

  constructor(
    readonly dataDir = tempDir('iotb-crash-'),
    readonly extraArgs: string[] = [],
  ) {}

  get port(): number {
    if (!this.proc) throw new Error('broker is not running');
    return this.proc.port;
  }

  async start(): Promise<number> {
    this.proc = await spawnBroker(['--host', '127.0.0.1', '--port', '0', '--data-dir', this.dataDir, ...this.extraArgs]);
    return this.proc.port;
  }

  /** Real SIGKILL: no shutdown code runs. */
  async kill9(): Promise<void> {
    const proc = this.proc;
    this.proc = null;
    if (proc && proc.child.exitCode === null && proc.child.signalCode === null) await proc.kill9();
  }

  async restart(): Promise<number> {
    await this.kill9();
    return this.start();
  }

  /** Cleanup for finally blocks. */
  async stop(): Promise<void> {
    await this.kill9();
  }
}
