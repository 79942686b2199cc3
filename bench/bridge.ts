// `npm run bench -- --bridge [--quick]`: the bridge's throughput and latency on this machine.
// Uplink: MQTT publishers (mqtt.js, QoS 1) on a cluster node → a RocketMQ topic → a Java push
// consumer on the official rocketmq-client. Downlink: Java producers → the downlink topic → the
// nodes → an MQTT subscriber (QoS 1). Starts its own RocketMQ (.rocketmq/bench-bridge) and two
// nodes, prints a table, writes bench/results/bridge-latest.md, and stops what it started by PID.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import mqtt from 'mqtt';
import { pickFreePorts, startLocalRocketMQ, stopLocalRocketMQ } from '../scripts/rocketmq/local-rocketmq';
import { buildJavaApp, startConsumer, startProducer, type JavaProducer } from '../test/bridge/java-app';
import { REPO_ROOT, freePort } from './brokers';
import { type Proc, startNode, stop, writeTable } from './cluster';

const log = (m: string) => process.stderr.write(`[bench:bridge ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

interface Measured {
  direction: string;
  sent: number;
  received: number;
  seconds: number;
  latenciesMs: number[];
  /** Downlink: how long the Java producer's synchronous send took, and SEND_OK → MQTT delivery. */
  sendMs?: number[];
  afterSendOkMs?: number[];
}

/** Payload: send time (ms, float) and a sequence, so the receiver measures latency and order. */
function stamp(seq: number): Buffer {
  const b = Buffer.alloc(64);
  b.writeDoubleLE(performance.timeOrigin + performance.now(), 0);
  b.writeUInt32LE(seq, 8);
  return b;
}
const sentAt = (payload: Buffer): number => payload.readDoubleLE(0);
const now = (): number => performance.timeOrigin + performance.now();

async function uplink(port: number, consumerNamesrv: string, topic: string, durationMs: number): Promise<Measured> {
  const latencies: number[] = [];
  let first = 0;
  let last = 0;
  const consumer = await startConsumer({
    namesrv: consumerNamesrv,
    topic,
    group: `${topic}_bench`,
    onMessage: (m) => {
      const t = now();
      latencies.push(t - sentAt(m.body));
      last = t;
    },
  });
  const publishers = await Promise.all(
    Array.from({ length: 10 }, (_, i) => mqtt.connectAsync({ host: '127.0.0.1', port, clientId: `bench-up-${i}`, reconnectPeriod: 0 })),
  );
  let sent = 0;
  const deadline = Date.now() + durationMs;
  first = now();
  // 10 publishers, 16 QoS 1 messages in flight each, until the deadline.
  await Promise.all(
    publishers.map(async (pub, p) => {
      const lanes = Array.from({ length: 16 }, async () => {
        while (Date.now() < deadline && sent < 200_000) {
          await pub.publishAsync(`up/${p}`, stamp(sent++), { qos: 1 });
        }
      });
      await Promise.all(lanes);
    }),
  );
  const publishedFor = (now() - first) / 1000;
  for (let i = 0; i < 600 && latencies.length < sent; i++) await new Promise((r) => setTimeout(r, 50));
  await Promise.all(publishers.map((p) => p.endAsync()));
  await consumer.stop();
  log(`uplink: ${sent} acknowledged in ${publishedFor.toFixed(1)} s, ${latencies.length} consumed`);
  return { direction: 'uplink: MQTT QoS 1 → Java consumer', sent, received: latencies.length, seconds: (last - first) / 1000, latenciesMs: latencies };
}

async function downlink(port: number, namesrv: string, topic: string, durationMs: number): Promise<Measured> {
  const latencies: number[] = [];
  let first = 0;
  let last = 0;
  const sub = await mqtt.connectAsync({ host: '127.0.0.1', port, clientId: 'bench-down-sub', reconnectPeriod: 0 });
  const sendMs: number[] = [];
  const sendOkAt = new Map<number, number>();
  const deliveredAt = new Map<number, number>();
  sub.on('message', (_topic, payload) => {
    const t = now();
    latencies.push(t - sentAt(payload));
    deliveredAt.set(payload.readUInt32LE(8), t);
    last = t;
  });
  await sub.subscribeAsync('down/#', { qos: 1 });
  const producers: JavaProducer[] = await Promise.all(Array.from({ length: 4 }, () => startProducer({ namesrv })));
  // Warm the JVMs up (JIT, connections) before measuring: messages to a topic nobody subscribes to.
  for (let i = 0; i < 50; i++) await Promise.all(producers.map((producer) => producer.sendOk({ topic, body: stamp(0), properties: { mqtt_topic: 'warmup' } })));
  let sent = 0;
  const deadline = Date.now() + durationMs;
  first = now();
  await Promise.all(
    producers.map(async (producer, p) => {
      // The Java app sends one message at a time (synchronous send); 8 queued keep it busy.
      const lanes = Array.from({ length: 8 }, async () => {
        while (Date.now() < deadline && sent < 200_000) {
          const seq = sent++;
          const started = now();
          await producer.sendOk({ topic, body: stamp(seq), properties: { mqtt_topic: `down/${p}`, mqtt_qos: '1' } });
          sendOkAt.set(seq, now());
          sendMs.push(now() - started);
        }
      });
      await Promise.all(lanes);
    }),
  );
  for (let i = 0; i < 600 && latencies.length < sent; i++) await new Promise((r) => setTimeout(r, 50));
  await Promise.all(producers.map((p) => p.stop()));
  await sub.endAsync();
  log(`downlink: ${sent} sent, ${latencies.length} delivered`);
  const afterSendOkMs = [...deliveredAt].map(([seq, t]) => t - (sendOkAt.get(seq) ?? t));
  return { direction: 'downlink: Java producer → MQTT QoS 1', sent, received: latencies.length, seconds: (last - first) / 1000, latenciesMs: latencies, sendMs, afterSendOkMs };
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export async function runBridgeBench(quick: boolean): Promise<void> {
  const durationMs = quick ? 5_000 : 15_000;
  const workDir = path.join(REPO_ROOT, '.rocketmq', 'bench-bridge');
  await stopLocalRocketMQ(workDir);
  fs.rmSync(workDir, { recursive: true, force: true });
  const { namesrvPort, brokerPort } = await pickFreePorts(25876, 26911, 1);
  const nodes: Proc[] = [];
  try {
    log('building the Java application (Maven, once)');
    buildJavaApp();
    const rocketmq = await startLocalRocketMQ({ workDir, namesrvPort, brokers: [{ name: 'broker-a', port: brokerPort }], log });
    const cluster = `bb${Date.now().toString(36)}`;
    const uplinkTopic = `${cluster}_up`;
    const args = ['--cluster', '--namesrv', rocketmq.namesrvAddr, '--cluster-name', cluster, '--bridge-uplink', `up/#=${uplinkTopic}`, '--node-lease-ms', '3000'];
    const node1 = await startNode('node-1', [...args, '--node-id', 'node-1', '--admin-port', String(await freePort())], workDir);
    nodes.push(node1);
    const node2 = await startNode('node-2', [...args, '--node-id', 'node-2', '--admin-port', String(await freePort())], workDir);
    nodes.push(node2);
    await new Promise((r) => setTimeout(r, 4000)); // the nodes share the downlink queues once their views settle

    const rows = [await uplink(node1.port, rocketmq.namesrvAddr, uplinkTopic, durationMs), await downlink(node2.port, rocketmq.namesrvAddr, `${cluster}_downlink`, durationMs)];
    const table = [
      `Bridge benchmark ${new Date().toISOString()} (${quick ? 'quick' : 'full'}): 64 B payloads, QoS 1, ${durationMs / 1000} s of sending per direction.`,
      `One machine: ${os.cpus().length} CPUs shared by RocketMQ (namesrv + broker, SYNC_FLUSH), two nodes, the JVMs of the Java application and the MQTT clients; nothing is pinned.`,
      'Uplink: 10 mqtt.js publishers on node 1, 16 in flight each; one Java push consumer (orderly listener). Downlink: 4 Java producers (synchronous sends) ; one mqtt.js subscriber on node 2.',
      '',
      '| direction | sent | received | msg/s | p50 ms | p99 ms |',
      '|---|---:|---:|---:|---:|---:|',
      ...rows.map((r) => {
        const sorted = [...r.latenciesMs].sort((x, y) => x - y);
        return `| ${r.direction} | ${r.sent} | ${r.received} | ${Math.round(r.received / r.seconds).toLocaleString('en-US')} | ${percentile(sorted, 0.5).toFixed(1)} | ${percentile(sorted, 0.99).toFixed(1)} |`;
      }),
      '',
      ...rows.filter((r) => r.sendMs).map((r) => {
        const send = [...r.sendMs!].sort((x, y) => x - y);
        const after = [...r.afterSendOkMs!].sort((x, y) => x - y);
        return `Downlink parts: the Java producer's synchronous send p50 ${percentile(send, 0.5).toFixed(1)} ms / p99 ${percentile(send, 0.99).toFixed(1)} ms (measured around the app's request, so it includes the app's queue); SEND_OK → MQTT subscriber p50 ${percentile(after, 0.5).toFixed(1)} ms / p99 ${percentile(after, 0.99).toFixed(1)} ms.`;
      }),
      '',
    ].join('\n');
    writeTable('bridge-latest.md', table, log);
    // Every message was acknowledged to its sender (PUBACK, SEND_OK), so one not received is lost.
    const short = rows.filter((r) => r.received < r.sent);
    for (const r of short) process.stderr.write(`bench: FAILED ${r.direction}: ${r.sent - r.received} of ${r.sent} acknowledged messages not received\n`);
    if (short.length > 0) process.exitCode = 1;
  } finally {
    for (const node of nodes.reverse()) await stop(node);
    await stopLocalRocketMQ(workDir, log);
  }
}
