// Cluster nodes as real processes (the CLI with --cluster) on the RocketMQ that `npm test` starts.
import { spawnBrokerOnFreePort, type BrokerProcess } from '../helpers';
import { namesrvAddr, uniqueName } from '../rocketmq/helpers';

export interface ClusterNode {
  id: string;
  port: number;
  adminPort: number;
  proc: BrokerProcess;
}

/** A cluster of its own (its own topic prefix) on the test RocketMQ; `stop` kills what it started. */
export class TestCluster {
  readonly name = uniqueName('t').replace(/_/g, '').slice(0, 24);
  readonly nodes = new Map<string, ClusterNode>();

  constructor(readonly extraArgs: string[] = []) {}

  async start(id: string): Promise<ClusterNode> {
    const { proc, port: adminPort } = await spawnBrokerOnFreePort(
      (adminPort) => [
        '--host', '127.0.0.1', '--port', '0', '--admin-port', String(adminPort),
        '--cluster', '--namesrv', namesrvAddr(), '--cluster-name', this.name, '--node-id', id,
        '--log-level', process.env.CLUSTER_LOG_LEVEL ?? 'info', ...this.extraArgs,
      ],
      60_000,
    );
    const node = { id, port: proc.port, adminPort, proc };
    this.nodes.set(id, node);
    return node;
  }

  /** Starts several nodes one after the other (they create the cluster's topics on first start). */
  async startAll(...ids: string[]): Promise<ClusterNode[]> {
    const started: ClusterNode[] = [];
    for (const id of ids) started.push(await this.start(id));
    return started;
  }

  async kill9(id: string): Promise<void> {
    const node = this.nodes.get(id);
    this.nodes.delete(id);
    await node?.proc.kill9();
  }

  async stop(): Promise<void> {
    await Promise.all([...this.nodes.keys()].map((id) => this.kill9(id)));
  }

  /** What the nodes logged, for failure messages: the last 4 000 characters each (DUMP_CLUSTER_LOGS=1: all). */
  logs(): string {
    return [...this.nodes.values()].map((n) => `--- ${n.id}\n${n.proc.output.join('').slice(process.env.DUMP_CLUSTER_LOGS ? -200000 : -4000)}`).join('\n');
  }
}
