import http from 'node:http';
import type net from 'node:net';
import { Registry, Gauge, Counter } from 'prom-client';
import type { Broker } from '../broker/broker';
import { type AdminApiOptions, handleAdminApi } from './admin-api';
import { dashboardHandler } from './dashboard-files';
import { machineMetrics } from './machine-metrics';

/**
 * Prometheus metrics read from the broker's counters at scrape time. `worker`: one of several
 * processes on the machine, whose metrics are also summed over all of them (machine-metrics.ts):
 * every worker routes to every session and knows every retained message, so those two gauges are
 * the same in each and their machine figure is the maximum, not the sum.
 */
export function createMetrics(broker: Broker, worker = false): Registry {
  const registry = new Registry();
  const s = broker.stats;
  new Gauge({ name: 'iotbridge_connections', help: 'Open connections', registers: [registry], collect() { this.set(s.connections); } });
  new Gauge({ name: 'iotbridge_sessions', help: 'Sessions held, online and offline', registers: [registry], collect() { this.set(broker.sessions.size); } });
  new Gauge({ name: 'iotbridge_subscriptions', help: 'Subscriptions in the router', registers: [registry], aggregator: 'max', collect() { this.set(broker.router.size); } });
  new Gauge({ name: 'iotbridge_retained_messages', help: 'Retained messages', registers: [registry], aggregator: 'max', collect() { this.set(broker.retained.size); } });
  if (worker) new Gauge({ name: 'iotbridge_worker_processes', help: 'Worker processes whose metrics these are', registers: [registry], collect() { this.set(1); } });
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({ name, help, registers: [registry], collect() { this.reset(); this.inc(read()); } });
  counter('iotbridge_connections_total', 'CONNECT packets handled', () => s.connectionsTotal);
  counter('iotbridge_connections_refused_total', 'CONNECTs refused', () => s.connectionsRefused);
  counter('iotbridge_messages_received_total', 'PUBLISHes routed (including wills)', () => s.messagesReceived);
  counter('iotbridge_messages_sent_total', 'PUBLISHes delivered to clients', () => s.messagesSent);
  counter('iotbridge_malformed_packets_total', 'Connections closed for malformed or oversize packets', () => s.malformedPackets);
  counter('iotbridge_rate_limited_total', 'Connections closed for publishing faster than maxPublishRate / maxPublishBytesRate', () => s.rateLimited);
  counter('iotbridge_connections_rate_limited_total', 'Connections refused for coming from an address past maxConnectionsPerAddressPerSecond', () => s.connectionsRateLimited);
  counter('iotbridge_wills_published_total', 'Wills published', () => s.willsPublished);
  counter('iotbridge_sessions_expired_total', 'Sessions removed by expiry', () => s.sessionsExpired);
  counter('iotbridge_store_retries_total', 'Store commits retried', () => s.storeRetries);
  counter('iotbridge_store_commits_total', 'Store batches committed (deliveries and background writes)', () => s.storeCommits);
  counter('iotbridge_store_commit_seconds_total', 'Time those batches took, from the first write joining one to the store\'s answer', () => s.storeCommitMs / 1000);
  counter('iotbridge_bridge_downlink_total', 'Cluster mode: messages from RocketMQ applications published to MQTT subscribers', () => s.downlinkPublished);
  counter('iotbridge_bridge_downlink_rejected_total', 'Cluster mode: messages from RocketMQ applications refused (no or invalid MQTT topic, bad properties, too large)', () => s.downlinkRejected);
  counter('iotbridge_publish_store_failures_total', 'Publishes refused after the store retries were spent', () => s.publishStoreFailures);
  const dropped = new Counter({
    name: 'iotbridge_messages_dropped_total',
    help: 'Deliveries dropped, by reason',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ reason: 'queue_full' }, s.messagesDroppedQueueFull);
      this.inc({ reason: 'expired' }, s.messagesDroppedExpired);
      this.inc({ reason: 'too_large' }, s.messagesDroppedTooLarge);
      this.inc({ reason: 'offline_qos0' }, s.messagesDroppedOfflineQos0);
      this.inc({ reason: 'unreadable' }, s.messagesDroppedUnreadable);
      this.inc({ reason: 'not_authorized' }, s.messagesDroppedNotAuthorized);
    },
  });
  void dropped;
  return registry;
}

/**
 * `/healthz`: the process is alive. `/readyz`: 200 only while `ready()` (cluster mode: RocketMQ
 * reachable, lease valid). `worker`: this process is one of several on the machine, with a port of
 * its own: `/metrics` is the whole machine's, `/metrics/worker` this worker's.
 */
export async function startAdminServer(broker: Broker, host: string, port: number, ready: () => boolean = () => true, api?: AdminApiOptions, worker = false): Promise<http.Server> {
  const registry = createMetrics(broker, worker);
  const machine = worker ? machineMetrics(registry) : undefined;
  const dashboard = dashboardHandler(Boolean(api?.token));
  const server = http.createServer((req, res) => {
    if (api && handleAdminApi(broker, api, req, res)) return;
    if (dashboard(req, res)) return;
    if (req.url === '/metrics' || req.url === '/metrics/worker') {
      (machine && req.url === '/metrics' ? machine() : registry.metrics()).then(
        (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
        (e: Error) => res.writeHead(503).end(`${e.message}\n`),
      );
    } else if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok', store: broker.store.kind }));
    } else if (req.url === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready: ok, store: broker.store.kind }));
    } else {
      res.writeHead(404).end('try /metrics, /healthz, /readyz, /api/v1 or /dashboard/ (docs/admin-api.md)\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // A worker's port is its own: node:cluster would otherwise share it among the workers.
    server.listen({ port, host, exclusive: worker }, () => resolve());
  });
  return server;
}

export function adminPort(server: http.Server): number {
  return (server.address() as net.AddressInfo).port;
}
