import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import os from 'node:os';
import { FileAuth } from './auth/file-auth';
import { jwtConfigured } from './auth/jwt';
import { Broker } from './broker/broker';
import type { Clock } from './broker/clock';
import { ClusterStore } from './cluster/cluster-store';
import { allowAll, type BrokerHooks, type Logger, silentLogger } from './broker/options';
import { adminPort, startAdminServer } from './ops/admin';
import type { AdminApiOptions } from './ops/admin-api';
import { SysTopics } from './ops/sys-topics';
import type { Config } from './ops/config';
import { MachineStore } from './machine/machine-store';
import { workerCount, workerSlot } from './machine/primary';
import { openTurn, opened } from './machine/open-turns';
import { LmdbStore } from './store/lmdb-store';
import { MemoryStore } from './store/memory-store';
import type { Store } from './store/types';
import { Listeners } from './transport/listeners';

export { loadConfig, defaultConfig, type Config } from './ops/config';
export type { Store } from './store/types';
export type { Clock } from './broker/clock';

export interface RunningBroker {
  broker: Broker;
  port: number;
  wsPort: number;
  tlsPort: number;
  adminPort: number;
  stop(): Promise<void>;
  /** Re-reads the password, ACL and JWT key files and the TLS files (SIGHUP); an error leaves the previous ones in place. */
  reload(): Error | undefined;
}

/** The composition root: the one place that chooses the store. */
export async function createStore(config: Config, log: Logger = silentLogger): Promise<Store> {
  if (config.cluster) {
    return new ClusterStore({
      namesrv: config.namesrv,
      nodeId: config.nodeId || `${os.hostname()}:${config.port}`,
      clusterName: config.clusterName,
      nodeLeaseMs: config.nodeLeaseMs,
      messageQueues: config.clusterMessageQueues,
      claimTimeoutMs: Math.max(config.connectTimeoutMs, config.nodeLeaseMs + 5000),
      snapshotEvery: 256,
      snapshotRenewMs: config.sessionSnapshotRenewMs,
      openReadLimit: config.maxQueuedMessages,
      uplink: config.bridgeUplink,
      downlinkTopic: config.bridgeDownlink ? config.bridgeDownlinkTopic || `${config.clusterName}_downlink` : undefined,
      maxPayload: config.maxPacketSize,
      log,
    });
  }
  if (config.store === 'memory') return new MemoryStore();
  const slot = workerSlot();
  if (slot !== undefined) {
    // One worker at a time opens the shared environment, the others' writes held meanwhile (open-turns.ts).
    await openTurn();
    const store = new MachineStore({
      dataDir: config.dataDir,
      durability: config.durability,
      mapSize: config.lmdbMapSize,
      slot,
      processes: workerCount(config),
      linkWaitMs: 5000,
      maxFrameBytes: config.maxPacketSize + 1024 * 1024,
      log,
    });
    opened(store);
    return store;
  }
  return new LmdbStore({ dataDir: config.dataDir, durability: config.durability, mapSize: config.lmdbMapSize });
}

export async function startBroker(
  config: Config,
  log: Logger,
  options: { store?: Store; hooks?: BrokerHooks; clock?: Clock } = {},
): Promise<RunningBroker> {
  const store = options.store ?? (await createStore(config, log));
  const fileAuth = !options.hooks && (config.passwordFile || config.aclFile || config.aclRules.length > 0 || config.allowAnonymous !== 'auto' || jwtConfigured(config)) ? new FileAuth(config, log) : undefined;
  const broker = new Broker(store, config, options.hooks ?? fileAuth ?? allowAll, log, options.clock);
  await broker.start();
  const listeners = new Listeners(broker, config);
  const ports = await listeners.start();
  let admin: http.Server | undefined;
  let stopped = false;
  // Ready: accepting clients, and in cluster mode holding a lease on a reachable RocketMQ.
  const ready = () => !stopped && (!(store instanceof ClusterStore) || store.ready);
  const api: AdminApiOptions = { token: config.adminToken, version: packageVersion(), startedAt: Date.now() };
  const sys = new SysTopics(broker, { intervalSeconds: config.sysInterval, version: api.version, root: sysRoot(config) });
  sys.start();
  if (config.adminPort > 0) {
    if (store instanceof ClusterStore) api.cluster = { node: store.membership.nodeKey, nodes: () => store.membership.liveNodes() };
    // A worker of several on the machine has a port of its own; its /metrics are the machine's.
    const slot = workerSlot();
    admin = await startAdminServer(broker, config.host, config.adminPort + (slot ?? 0), ready, api, slot !== undefined);
    if (store instanceof ClusterStore) store.membership.advertiseAdmin(config.adminAdvertiseUrl || `http://${advertisedHost(config.host)}:${adminPort(admin)}`);
  }
  let stopping: Promise<void> | undefined;
  return {
    broker,
    ...ports,
    adminPort: admin ? adminPort(admin) : 0,
    reload: () => {
      const tlsError = listeners.reloadTls();
      if (tlsError) log.error({ err: tlsError.message }, 'TLS files not reloaded; the previous ones stay');
      return fileAuth?.reload() ?? tlsError;
    },
    stop() {
      stopping ??= (async () => {
        stopped = true;
        sys.stop();
        await listeners.stop();
        admin?.close();
        await broker.stop();
        await store.close();
      })();
      return stopping;
    },
  };
}

/** Where this process publishes its `$SYS` topics: a node of a cluster and a worker of several each under their own name. */
function sysRoot(config: Config): string {
  if (config.cluster) return `$SYS/brokers/${config.nodeId || `${os.hostname()}:${config.port}`}`;
  const slot = workerSlot();
  return slot === undefined ? '$SYS/broker' : `$SYS/brokers/worker-${slot}`;
}

/** A host other machines can reach: the one listened on, or this machine's name when that is every address. */
function advertisedHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return os.hostname();
  return host.includes(':') ? `[${host}]` : host;
}

function packageVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: string }).version ?? '?';
  } catch {
    return '?';
  }
}
