// The admin REST API under /api/v1 on the admin port (docs/admin-api.md). Every request needs
// `Authorization: Bearer <adminToken>`; without a configured token the API is off. JSON in and out,
// request bodies at most 64 KiB. It sees the clients and sessions this broker process holds; in
// cluster mode it also asks the other nodes (admin-peers.ts), so that any node answers for all.
import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { Broker } from '../broker/broker';
import { Channel } from '../broker/channel';
import type { Session } from '../broker/session';
import type { QoS } from '../protocol/packets';
import { topicNameError } from '../protocol/topics';
import type { Message } from '../store/types';
import { type ClusterView, NODE_SCOPE_HEADER, askPeers } from './admin-peers';

const MAX_BODY = 64 * 1024;
const MAX_PAGE = 1000;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface AdminApiOptions {
  /** Bearer token; '' turns the API off. */
  token: string;
  version: string;
  startedAt: number;
  /** Cluster mode: this node and the others, whose admin APIs it asks. */
  cluster?: ClusterView;
}

/** Handles the request if it is for /api/v1; returns false otherwise. */
export function handleAdminApi(broker: Broker, options: AdminApiOptions, req: http.IncomingMessage, res: http.ServerResponse): boolean {
  const url = new URL(req.url ?? '/', 'http://admin');
  if (!url.pathname.startsWith('/api/')) return false;
  const reply = (status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
  };
  if (!options.token) {
    reply(404, { error: 'the admin API is off: set adminToken to turn it on (docs/admin-api.md)' });
    return true;
  }
  if (!authorized(req.headers.authorization, options.token)) {
    res.setHeader('www-authenticate', 'Bearer');
    reply(401, { error: 'missing or wrong bearer token' });
    return true;
  }
  route(broker, options, req, url).then(
    ([status, body]) => reply(status, body),
    (e: unknown) => (e instanceof HttpError ? reply(e.status, { error: e.message }) : reply(500, { error: (e as Error).message })),
  );
  return true;
}

function authorized(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

async function route(broker: Broker, options: AdminApiOptions, req: http.IncomingMessage, url: URL): Promise<[number, unknown]> {
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent); // ['api', 'v1', ...]
  if (parts[0] !== 'api' || parts[1] !== 'v1') throw new HttpError(404, 'unknown API version: use /api/v1');
  const [resource, id] = [parts[2], parts.slice(3).join('/')];
  const method = req.method ?? 'GET';
  // Cluster-wide unless another node asks (it wants this node's own answer).
  const cluster = req.headers[NODE_SCOPE_HEADER] === 'node' ? undefined : options.cluster;
  const node = options.cluster?.node;
  const elsewhere = (why: string) => askElsewhere(cluster, options.token, method, url, why);
  if (resource === 'info' && method === 'GET' && !id) return [200, await info(broker, options, cluster)];
  if (resource === 'stats' && method === 'GET' && !id) return [200, stats(broker)];
  if (resource === 'subscriptions' && method === 'GET' && !id) return [200, listSubscriptions(broker, url.searchParams)];
  if (resource === 'clients' && method === 'GET' && !id) return [200, await listClients(broker, url, options.token, node, cluster)];
  if (resource === 'clients' && method === 'GET' && id) {
    const session = broker.sessions.get(id);
    return session ? [200, { ...sessionView(session), node }] : elsewhere(`no session ${id}`);
  }
  if (resource === 'clients' && method === 'DELETE' && id) {
    return broker.kick(id) ? [200, { kicked: id, node }] : elsewhere(`client ${id} is not connected`);
  }
  if (resource === 'sessions' && method === 'DELETE' && id) {
    return broker.dropSession(id) ? [200, { discarded: id, node }] : elsewhere(`no session ${id}`);
  }
  if (resource === 'retained' && method === 'GET' && !id) return [200, listRetained(broker, url.searchParams)];
  if (resource === 'retained' && method === 'GET' && id) return [200, messageView(found(broker.retained.get(id), `no retained message on ${id}`))];
  if (resource === 'retained' && method === 'DELETE' && id) {
    if (!(await broker.deleteRetained(id))) throw new HttpError(404, `no retained message on ${id}`);
    return [200, { deleted: id }];
  }
  if (resource === 'publish' && method === 'POST' && !id) return [200, await publish(broker, await readJson(req))];
  throw new HttpError(404, `no ${method} ${url.pathname} (see docs/admin-api.md)`);
}

/** What the node that has it answers (in cluster mode), else 404 with `why`. */
async function askElsewhere(cluster: ClusterView | undefined, token: string, method: string, url: URL, why: string): Promise<[number, unknown]> {
  if (!cluster) throw new HttpError(404, why);
  const { answers, unreachable } = await askPeers(cluster, token, method, url.pathname + url.search);
  const hit = answers.find((a) => a.status === 200);
  if (hit) return [200, hit.body];
  throw new HttpError(404, unreachable.length > 0 ? `${why} on any node that answered (no answer from ${unreachable.join(', ')})` : `${why} on any node`);
}

function found<T>(value: T | undefined, why: string): T {
  if (value === undefined) throw new HttpError(404, why);
  return value;
}

async function info(broker: Broker, options: AdminApiOptions, cluster: ClusterView | undefined): Promise<unknown> {
  const own = { ...nodeInfo(broker, options), node: options.cluster?.node };
  if (!cluster) return own;
  const { answers, unreachable } = await askPeers(cluster, options.token, 'GET', '/api/v1/info');
  const nodes = [own, ...answers.filter((a) => a.status === 200).map((a) => ({ ...a.body, node: a.node, admin: a.admin }))];
  return { ...own, nodes, unreachable };
}

function nodeInfo(broker: Broker, options: AdminApiOptions): Record<string, unknown> {
  const s = broker.stats;
  return {
    version: options.version,
    uptimeSeconds: Math.round((Date.now() - options.startedAt) / 1000),
    store: broker.store.kind,
    connections: s.connections,
    sessions: broker.sessions.size,
    subscriptions: broker.router.size,
    retained: broker.retained.size,
    messagesReceived: s.messagesReceived,
    messagesSent: s.messagesSent,
  };
}

/**
 * The broker's counters, cumulative since it started, and the time they were read: a client
 * sampling twice gets rates from the differences (the dashboard does, every 2 s).
 */
function stats(broker: Broker): unknown {
  const s = broker.stats;
  return {
    sampledAt: Date.now(),
    connections: s.connections,
    connectionsTotal: s.connectionsTotal,
    connectionsRefused: s.connectionsRefused,
    sessions: broker.sessions.size,
    subscriptions: broker.router.size,
    retained: broker.retained.size,
    messagesReceived: s.messagesReceived,
    messagesSent: s.messagesSent,
    dropped: {
      queueFull: s.messagesDroppedQueueFull,
      expired: s.messagesDroppedExpired,
      tooLarge: s.messagesDroppedTooLarge,
      offlineQos0: s.messagesDroppedOfflineQos0,
      unreadable: s.messagesDroppedUnreadable,
      notAuthorized: s.messagesDroppedNotAuthorized,
    },
    store: { kind: broker.store.kind, commits: s.storeCommits, commitMs: s.storeCommitMs, retries: s.storeRetries, publishFailures: s.publishStoreFailures },
    malformedPackets: s.malformedPackets,
    rateLimited: s.rateLimited,
    willsPublished: s.willsPublished,
    sessionsExpired: s.sessionsExpired,
  };
}

/** Client ids listed with each filter; `subscribers` counts them all. */
const CLIENTS_PER_FILTER = 10;

/** Subscribed filters (of online and offline sessions) in filter order, paged like clients. */
function listSubscriptions(broker: Broker, q: URLSearchParams): unknown {
  const clientsByFilter = new Map<string, string[]>();
  for (const session of broker.sessions.values()) {
    for (const filter of session.subscriptionFilters) {
      const ids = clientsByFilter.get(filter);
      if (ids) ids.push(session.clientId);
      else clientsByFilter.set(filter, [session.clientId]);
    }
  }
  const { items, next } = page([...clientsByFilter.keys()], q);
  const subscriptions = items.map((filter) => {
    const ids = clientsByFilter.get(filter)!.sort();
    return { filter, subscribers: ids.length, clients: ids.slice(0, CLIENTS_PER_FILTER) };
  });
  return { subscriptions, next };
}

/**
 * Connected clients in client-id order, a page at a time. Cluster-wide, each node gives its own
 * page after the same `after`; the first `limit` of all of them, merged, is the cluster's page.
 */
async function listClients(broker: Broker, url: URL, token: string, node: string | undefined, cluster: ClusterView | undefined): Promise<unknown> {
  const ids = [...broker.sessions.values()].filter((s) => s.online).map((s) => s.clientId);
  const own = page(ids, url.searchParams);
  const clients: { clientId: string }[] = own.items.map((id) => ({ ...clientView(broker.sessions.get(id)!), node }));
  if (!cluster) return { clients, next: own.next };
  const { answers, unreachable } = await askPeers(cluster, token, 'GET', url.pathname + url.search);
  let more = own.next !== null;
  for (const answer of answers) {
    if (answer.status !== 200 || !Array.isArray(answer.body.clients)) continue;
    more ||= answer.body.next !== null;
    for (const c of answer.body.clients as unknown[]) {
      if (typeof c === 'object' && c !== null && typeof (c as { clientId?: unknown }).clientId === 'string') clients.push(c as { clientId: string });
    }
  }
  // During a takeover a client may show on two nodes for a moment: listed once.
  const merged = [...new Map(clients.sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0)).map((c) => [c.clientId, c])).values()];
  const limit = pageSize(url.searchParams);
  const items = merged.slice(0, limit);
  return { clients: items, next: items.length > 0 && (more || merged.length > limit) ? items[items.length - 1]!.clientId : null, unreachable };
}

/**
 * The keys starting with `prefix`, sorted, `limit` of them after the key `after`; `next` is the
 * `after` of the following page, or null.
 */
function page(keys: string[], q: URLSearchParams): { items: string[]; next: string | null } {
  const prefix = q.get('prefix') ?? '';
  const after = q.get('after') ?? '';
  const limit = pageSize(q);
  const matching = keys.filter((k) => k.startsWith(prefix) && k > after).sort();
  const items = matching.slice(0, limit);
  return { items, next: matching.length > limit ? items[items.length - 1]! : null };
}

function pageSize(q: URLSearchParams): number {
  const raw = q.get('limit');
  const n = raw === null ? 100 : Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE) throw new HttpError(400, `limit must be 1..${MAX_PAGE}`);
  return n;
}

function clientView(session: Session): { clientId: string; connected: boolean; username?: string; remoteAddress?: string; protocolVersion: number } {
  const owner = session.owner;
  const channel = owner instanceof Channel ? owner : undefined;
  return {
    clientId: session.clientId,
    connected: session.online,
    username: channel?.username,
    remoteAddress: channel?.transport.remoteAddress,
    protocolVersion: session.protocolVersion,
  };
}

function sessionView(session: Session): Record<string, unknown> {
  return {
    ...clientView(session),
    persistent: session.persistent,
    expiryInterval: session.expiryInterval,
    disconnectedAt: session.disconnectedAt ? new Date(session.disconnectedAt).toISOString() : null,
    subscriptions: [...session.subscriptions.values()].map((s) => ({ filter: s.filter, qos: s.qos, noLocal: s.noLocal, retainAsPublished: s.retainAsPublished, retainHandling: s.retainHandling })),
    queued: session.outbound.pendingCount,
    inflight: session.outbound.inflightCount,
    willPending: session.will !== undefined,
  };
}

function listRetained(broker: Broker, q: URLSearchParams): unknown {
  const { items, next } = page([...broker.retained.keys()], q);
  return { retained: items.map((t) => messageView(broker.retained.get(t)!)), next };
}

function messageView(m: Message): unknown {
  const utf8 = m.payload.toString('utf8');
  const text = Buffer.from(utf8, 'utf8').equals(m.payload);
  return { topic: m.topic, qos: m.qos, payload: text ? utf8 : m.payload.toString('base64'), encoding: text ? 'utf8' : 'base64', publishedAt: new Date(m.createdAt).toISOString() };
}

async function publish(broker: Broker, body: Record<string, unknown>): Promise<unknown> {
  const topic = body.topic;
  if (typeof topic !== 'string' || topic === '') throw new HttpError(400, 'topic (string) is required');
  const topicError = topicNameError(topic);
  if (topicError) throw new HttpError(400, `topic: ${topicError}`);
  const qos = body.qos ?? 0;
  if (qos !== 0 && qos !== 1 && qos !== 2) throw new HttpError(400, 'qos must be 0, 1 or 2');
  const encoding = body.encoding ?? 'utf8';
  if (encoding !== 'utf8' && encoding !== 'base64') throw new HttpError(400, 'encoding must be utf8 or base64');
  if (typeof (body.payload ?? '') !== 'string') throw new HttpError(400, 'payload must be a string');
  const retain = body.retain ?? false;
  if (typeof retain !== 'boolean') throw new HttpError(400, 'retain must be true or false');
  const now = Date.now();
  const message: Message = { topic, payload: Buffer.from(String(body.payload ?? ''), encoding), qos: qos as QoS, retain, publisherId: '', createdAt: now };
  await broker.publish(message); // QoS 1/2: resolves once stored
  return { published: topic, qos };
}

function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      // Past the bound the rest is read and dropped (bounded memory), so the 413 reaches the client.
      if (size > MAX_BODY) reject(new HttpError(413, `request body over ${MAX_BODY} bytes`));
      else chunks.push(c);
    });
    req.on('end', () => {
      if (size > MAX_BODY) return;
      try {
        const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
        if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
        resolve(value as Record<string, unknown>);
      } catch (e) {
        reject(new HttpError(400, `body must be a JSON object (${(e as Error).message})`));
      }
    });
    req.on('error', reject);
  });
}
