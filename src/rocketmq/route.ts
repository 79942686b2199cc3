// Name-server lookups (GET_ROUTEINFO_BY_TOPIC, GET_BROKER_CLUSTER_INFO) and a route cache.
import { RemotingClient } from './remoting-client';
import { RequestCode } from './request-code';
import { NoRouteError, RemotingProtocolError, ResponseCode, TopicNotExistError, errorForResponse, isTransient } from './errors';

export const PERM_READ = 4;
export const PERM_WRITE = 2;
export const MASTER_ID = 0;
/** Template topic that brokers with autoCreateTopicEnable advertise; sending with it as defaultTopic creates topics. */
export const AUTO_CREATE_TOPIC_KEY = 'TBW102';

export interface BrokerData {
  cluster: string;
  brokerName: string;
  /** brokerId -> address; id 0 is the master. */
  brokerAddrs: Map<number, string>;
}

export interface QueueData {
  brokerName: string;
  readQueueNums: number;
  writeQueueNums: number;
  perm: number;
  topicSysFlag: number;
}

export interface TopicRoute {
  topic: string;
  brokers: BrokerData[];
  queues: QueueData[];
}

export interface MessageQueue {
  topic: string;
  brokerName: string;
  queueId: number;
}

export interface ClusterInfo {
  brokerAddrTable: Map<string, BrokerData>;
  clusterAddrTable: Map<string, string[]>;
}

/**
 * fastjson writes maps with integer keys unquoted ({0:"127.0.0.1:10911"}), which JSON.parse rejects.
 * Quote bare numeric object keys, leaving string contents untouched.
 */
export function fastjsonToJson(text: string): string {
  let out = '';
  let inString = false;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (inString) {
      out += ch;
      if (ch === '\\') {
        out += text[i + 1] ?? '';
        i++;
      } else if (ch === '"') {
        inString = false;
      }
      continue;
    }
    if (ch === '"') {
      inString = true;
      expectKey = false;
      out += ch;
    } else if (ch === '{' || ch === ',') {
      expectKey = true;
      out += ch;
    } else if (ch === ' ' || ch === '\n' || ch === '\r' || ch === '\t') {
      out += ch;
    } else if (expectKey && (ch === '-' || (ch >= '0' && ch <= '9'))) {
      let j = i + 1;
      while (j < text.length && /[0-9]/.test(text[j] as string)) j++;
      let k = j;
      while (k < text.length && /\s/.test(text[k] as string)) k++;
      if (text[k] === ':') {
        out += `"${text.slice(i, j)}"`;
        i = j - 1;
      } else {
        out += ch;
      }
      expectKey = false;
    } else {
      expectKey = false;
      out += ch;
    }
  }
  return out;
}

function parseJsonBody(body: Buffer | undefined, what: string): Record<string, unknown> {
  if (!body || body.length === 0) throw new RemotingProtocolError(`${what}: empty body`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fastjsonToJson(body.toString('utf8')));
  } catch (err) {
    throw new RemotingProtocolError(`${what}: body is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null) throw new RemotingProtocolError(`${what}: body is not an object`);
  return parsed as Record<string, unknown>;
}

function asRecord(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function asArray(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function num(v: unknown, fallback = 0): number {
  return typeof v === 'number' ? v : typeof v === 'string' && v !== '' && !Number.isNaN(Number(v)) ? Number(v) : fallback;
}

function parseBrokerData(v: unknown): BrokerData {
  const r = asRecord(v);
  const brokerAddrs = new Map<number, string>();
  for (const [id, addr] of Object.entries(asRecord(r.brokerAddrs))) {
    if (typeof addr === 'string') brokerAddrs.set(Number(id), addr);
  }
  return { cluster: String(r.cluster ?? ''), brokerName: String(r.brokerName ?? ''), brokerAddrs };
}

export function parseTopicRoute(topic: string, body: Buffer | undefined): TopicRoute {
  const r = parseJsonBody(body, `route of ${topic}`);
  return {
    topic,
    brokers: asArray(r.brokerDatas).map(parseBrokerData),
    queues: asArray(r.queueDatas).map((q) => {
      const qr = asRecord(q);
      return {
        brokerName: String(qr.brokerName ?? ''),
        readQueueNums: num(qr.readQueueNums),
        writeQueueNums: num(qr.writeQueueNums),
        perm: num(qr.perm),
        topicSysFlag: num(qr.topicSysFlag),
      };
    }),
  };
}

export function parseClusterInfo(body: Buffer | undefined): ClusterInfo {
  const r = parseJsonBody(body, 'cluster info');
  const brokerAddrTable = new Map<string, BrokerData>();
  for (const [name, data] of Object.entries(asRecord(r.brokerAddrTable))) brokerAddrTable.set(name, parseBrokerData(data));
  const clusterAddrTable = new Map<string, string[]>();
  for (const [cluster, names] of Object.entries(asRecord(r.clusterAddrTable))) {
    clusterAddrTable.set(cluster, asArray(names).map(String));
  }
  return { brokerAddrTable, clusterAddrTable };
}

/** Writable queues in a stable order (broker name, then queue id), so every node maps a key to the same queue. */
export function writableQueues(route: TopicRoute, topic: string = route.topic): MessageQueue[] {
  const out: MessageQueue[] = [];
  const withMaster = new Set(route.brokers.filter((b) => b.brokerAddrs.has(MASTER_ID)).map((b) => b.brokerName));
  for (const q of [...route.queues].sort((a, b) => (a.brokerName < b.brokerName ? -1 : a.brokerName > b.brokerName ? 1 : 0))) {
    if ((q.perm & PERM_WRITE) === 0 || !withMaster.has(q.brokerName)) continue;
    for (let i = 0; i < q.writeQueueNums; i++) out.push({ topic, brokerName: q.brokerName, queueId: i });
  }
  return out;
}

export function readableQueues(route: TopicRoute): MessageQueue[] {
  const out: MessageQueue[] = [];
  for (const q of [...route.queues].sort((a, b) => (a.brokerName < b.brokerName ? -1 : a.brokerName > b.brokerName ? 1 : 0))) {
    if ((q.perm & PERM_READ) === 0) continue;
    for (let i = 0; i < q.readQueueNums; i++) out.push({ topic: route.topic, brokerName: q.brokerName, queueId: i });
  }
  return out;
}

/** Talks to one of several name servers, moving to the next one when the current one fails. */
export class NameServerClient {
  private current = 0;

  constructor(
    private readonly remoting: RemotingClient,
    private readonly addresses: readonly string[],
  ) {
    if (addresses.length === 0) throw new NoRouteError('', 'at least one name-server address is required');
  }

  private async call<T>(fn: (address: string) => Promise<T>): Promise<T> {
    let lastError: unknown;
    for (let attempt = 0; attempt < this.addresses.length; attempt++) {
      const address = this.addresses[(this.current + attempt) % this.addresses.length] as string;
      try {
        const result = await fn(address);
        this.current = (this.current + attempt) % this.addresses.length;
        return result;
      } catch (err) {
        if (!isTransient(err)) throw err;
        lastError = err;
      }
    }
    throw lastError;
  }

  /** Resolves the route, or throws TopicNotExistError when no broker serves the topic. */
  getTopicRoute(topic: string): Promise<TopicRoute> {
    return this.call(async (address) => {
      const response = await this.remoting.request(address, {
        code: RequestCode.GET_ROUTEINFO_BY_TOPIC,
        extFields: { topic, acceptStandardJsonOnly: 'true' },
      });
      if (response.code === ResponseCode.TOPIC_NOT_EXIST) {
        throw new TopicNotExistError(response.code, response.remark, address, RequestCode.GET_ROUTEINFO_BY_TOPIC);
      }
      if (response.code !== ResponseCode.SUCCESS) {
        throw errorForResponse(response.code, response.remark, address, RequestCode.GET_ROUTEINFO_BY_TOPIC);
      }
      return parseTopicRoute(topic, response.body);
    });
  }

  getClusterInfo(): Promise<ClusterInfo> {
    return this.call(async (address) => {
      const response = await this.remoting.requestOk(address, { code: RequestCode.GET_BROKER_CLUSTER_INFO, extFields: {} });
      return parseClusterInfo(response.body);
    });
  }
}

export interface RouteCacheOptions {
  /** Routes older than this are refreshed on next use. */
  routeTtlMs: number;
}

/** Caches topic routes and broker addresses; concurrent lookups of one topic share one request. */
export class RouteCache {
  private readonly routes = new Map<string, { route: TopicRoute; fetchedAt: number }>();
  private readonly inflight = new Map<string, Promise<TopicRoute>>();
  private readonly brokerAddrs = new Map<string, string>();

  constructor(
    private readonly namesrv: NameServerClient,
    private readonly options: RouteCacheOptions = { routeTtlMs: 30_000 },
  ) {}

  async getRoute(topic: string, forceRefresh = false): Promise<TopicRoute> {
    const cached = this.routes.get(topic);
    if (!forceRefresh && cached && Date.now() - cached.fetchedAt < this.options.routeTtlMs) return cached.route;
    let pending = this.inflight.get(topic);
    if (!pending) {
      pending = this.namesrv.getTopicRoute(topic).then(
        (route) => {
          this.inflight.delete(topic);
          this.routes.set(topic, { route, fetchedAt: Date.now() });
          this.learnBrokers(route.brokers);
          return route;
        },
        (err: unknown) => {
          this.inflight.delete(topic);
          throw err;
        },
      );
      this.inflight.set(topic, pending);
    }
    return pending;
  }

  invalidate(topic: string): void {
    this.routes.delete(topic);
  }

  private learnBrokers(brokers: BrokerData[]): void {
    for (const b of brokers) {
      const master = b.brokerAddrs.get(MASTER_ID);
      if (master) this.brokerAddrs.set(b.brokerName, master);
    }
  }

  /** Master address of a broker; asks the namesrv for cluster info when the name is not known yet. */
  async brokerAddress(brokerName: string, forceRefresh = false): Promise<string> {
    const known = this.brokerAddrs.get(brokerName);
    if (known && !forceRefresh) return known;
    const info = await this.namesrv.getClusterInfo();
    this.learnBrokers([...info.brokerAddrTable.values()]);
    const addr = this.brokerAddrs.get(brokerName);
    if (!addr) throw new NoRouteError('', `broker ${brokerName} is not registered at the name server`);
    return addr;
  }

  async clusterInfo(): Promise<ClusterInfo> {
    const info = await this.namesrv.getClusterInfo();
    this.learnBrokers([...info.brokerAddrTable.values()]);
    return info;
  }
}
