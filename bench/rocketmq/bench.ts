// npm run bench:rocketmq
// Starts its own RocketMQ (work dir .rocketmq/bench), then measures, against the same broker:
//   - the iot-bridge client: sync send, pipelined send (bounded window), sequential pull by offset;
//   - the official Java client (rocketmq-client, same version as the broker) doing the same
//     (bench/rocketmq/JavaClientBench.java, compiled here with javac).
// Prints a table with the ratio node/java, writes bench/results/rocketmq-<time>.json and an SVG plot.
// Options (env): BENCH_SYNC (default 20000), BENCH_PIPELINED (200000), BENCH_WINDOW (256),
//   BENCH_BODY (256 bytes), BENCH_WARMUP (10000), ROCKETMQ_BENCH_NAMESRV_PORT, ROCKETMQ_BENCH_BROKER_PORT.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_ROCKETMQ_VERSION, defaultCacheDir, startLocalRocketMQ, stopLocalRocketMQ } from '../../scripts/rocketmq/local-rocketmq';
import { MessageQueue, RocketMQClient } from '../../src/rocketmq';

interface Measurement {
  client: 'node' | 'java';
  op: 'send-sync' | 'send-pipelined' | 'pull';
  messages: number;
  seconds: number;
}

const env = (name: string, fallback: number): number => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
};

const SYNC = env('BENCH_SYNC', 20_000);
const PIPELINED = env('BENCH_PIPELINED', 200_000);
const WINDOW = env('BENCH_WINDOW', 256);
const BODY = env('BENCH_BODY', 256);
const WARMUP = env('BENCH_WARMUP', 10_000);
const ROUNDS = env('BENCH_ROUNDS', 2);
const root = path.join(__dirname, '..', '..', '..');

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

async function nodeBench(namesrvAddr: string, topic: string): Promise<Measurement[]> {
  const client = new RocketMQClient({ namesrvAddr, requestTimeoutMs: 10_000 });
  const body = Buffer.alloc(BODY);
  for (let i = 0; i < body.length; i++) body[i] = 97 + (i % 26);
  const out: Measurement[] = [];
  try {
    for (let i = 0; i < WARMUP; i++) await client.send({ topic, body });
    let t = process.hrtime.bigint();
    for (let i = 0; i < SYNC; i++) await client.send({ topic, body });
    out.push({ client: 'node', op: 'send-sync', messages: SYNC, seconds: Number(process.hrtime.bigint() - t) / 1e9 });
    log(`node send-sync done`);

    t = process.hrtime.bigint();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < PIPELINED) {
        next++;
        await client.send({ topic, body });
      }
    };
    await Promise.all(Array.from({ length: WINDOW }, worker));
    out.push({ client: 'node', op: 'send-pipelined', messages: PIPELINED, seconds: Number(process.hrtime.bigint() - t) / 1e9 });
    log(`node send-pipelined done`);

    const queues = await client.getSubscribeQueues(topic);
    let pulled = 0;
    let bytes = 0;
    // Warm-up (untimed): the first pulls of a run pay for JIT compilation on both sides.
    let warmOffset = 0;
    for (let i = 0; i < WARMUP / 32; i++) {
      const r = await client.pull(queues[0] as MessageQueue, warmOffset, { maxMessages: 32 });
      if (r.status !== 'FOUND') break;
      warmOffset = r.nextBeginOffset;
    }
    t = process.hrtime.bigint();
    for (const q of queues) {
      let offset = 0;
      for (let guard = 0; guard < 10_000_000; guard++) {
        const r = await client.pull(q, offset, { maxMessages: 32 });
        if (r.status !== 'FOUND') break;
        for (const m of r.messages) bytes += m.body.length;
        pulled += r.messages.length;
        offset = r.nextBeginOffset;
      }
    }
    out.push({ client: 'node', op: 'pull', messages: pulled, seconds: Number(process.hrtime.bigint() - t) / 1e9 });
    if (bytes === 0) throw new Error('node pull read nothing');
    log(`node pull done (${pulled} messages)`);
  } finally {
    client.close();
  }
  return out;
}

function javaBench(namesrvAddr: string, topic: string, libDir: string): Measurement[] {
  const classesDir = path.join(path.dirname(libDir), 'bench-classes');
  fs.mkdirSync(classesDir, { recursive: true });
  const source = path.join(root, 'bench', 'rocketmq', 'JavaClientBench.java');
  const javac = spawnSync('javac', ['-d', classesDir, '-cp', path.join(libDir, '*'), source], { encoding: 'utf8' });
  if (javac.error || javac.status !== 0) {
    throw new Error(`javac failed (a JDK, not only a JRE, is needed): ${javac.error?.message ?? javac.stderr}`);
  }
  const run = spawnSync(
    'java',
    [
      '-Xms512m',
      '-Xmx512m',
      '-Drocketmq.client.logRoot=' + path.join(root, '.rocketmq', 'bench', 'java-client-logs'),
      '-cp',
      `${classesDir}${path.delimiter}${path.join(libDir, '*')}`,
      'JavaClientBench',
      namesrvAddr,
      topic,
      String(SYNC),
      String(PIPELINED),
      String(WINDOW),
      String(BODY),
      String(WARMUP),
    ],
    { encoding: 'utf8', timeout: 15 * 60_000, maxBuffer: 64 * 1024 * 1024 },
  );
  if (run.status !== 0) throw new Error(`Java benchmark failed:\n${run.stdout}\n${run.stderr}`);
  return run.stdout
    .split('\n')
    .filter((l) => l.startsWith('{"op"'))
    .map((l) => {
      const parsed = JSON.parse(l) as { op: Measurement['op']; messages: number; seconds: number };
      return { client: 'java', op: parsed.op, messages: parsed.messages, seconds: parsed.seconds };
    });
}

function svgPlot(rows: Array<{ op: string; node: number; java: number }>): string {
  const width = 640;
  const barH = 22;
  const max = Math.max(...rows.flatMap((r) => [r.node, r.java]), 1);
  const scale = (v: number): number => Math.round((v / max) * 380);
  let y = 40;
  let body = '';
  for (const r of rows) {
    body += `<text x="10" y="${y + 15}" font-size="13">${r.op}</text>`;
    body += `<rect x="150" y="${y}" width="${scale(r.node)}" height="${barH - 4}" fill="#2b7bb9"/><text x="${155 + scale(r.node)}" y="${y + 14}" font-size="12">node ${Math.round(r.node)}/s</text>`;
    y += barH;
    body += `<rect x="150" y="${y}" width="${scale(r.java)}" height="${barH - 4}" fill="#e07b39"/><text x="${155 + scale(r.java)}" y="${y + 14}" font-size="12">java ${Math.round(r.java)}/s</text>`;
    y += barH + 14;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" font-family="sans-serif"><text x="10" y="22" font-size="15">RocketMQ client throughput (messages/s, ${BODY} B bodies)</text>${body}</svg>\n`;
}

async function main(): Promise<void> {
  const workDir = path.join(root, '.rocketmq', 'bench');
  const version = process.env.ROCKETMQ_VERSION ?? DEFAULT_ROCKETMQ_VERSION;
  await stopLocalRocketMQ(workDir);
  fs.rmSync(workDir, { recursive: true, force: true });
  const stop = (): Promise<number> => stopLocalRocketMQ(workDir, log);
  process.once('SIGINT', () => void stop().finally(() => process.exit(130)));
  try {
    const started = await startLocalRocketMQ({
      workDir,
      namesrvPort: env('ROCKETMQ_BENCH_NAMESRV_PORT', 25876),
      brokers: [{ name: 'broker-a', port: env('ROCKETMQ_BENCH_BROKER_PORT', 26911) }],
      version,
      log,
    });
    const admin = new RocketMQClient({ namesrvAddr: started.namesrvAddr });
    for (let round = 0; round < ROUNDS; round++) {
      await admin.createTopic(`BenchNode${round}`, { queueNums: 4 });
      await admin.createTopic(`BenchJava${round}`, { queueNums: 4 });
    }
    admin.close();
    log(`sync ${SYNC}, pipelined ${PIPELINED} (window ${WINDOW}), body ${BODY} B, warm-up ${WARMUP}, ${ROUNDS} rounds; ${os.cpus().length} cores`);
    // The machine is shared by broker and client; alternate the order each round and keep each
    // client's best round, so neither profits from the other warming up the broker.
    const node: Measurement[] = [];
    const java: Measurement[] = [];
    const libDir = path.join(defaultCacheDir(version), 'lib');
    for (let round = 0; round < ROUNDS; round++) {
      const runNode = async (): Promise<void> => {
        log(`round ${round + 1}: iot-bridge client`);
        node.push(...(await nodeBench(started.namesrvAddr, `BenchNode${round}`)));
      };
      const runJava = (): void => {
        log(`round ${round + 1}: Java client`);
        java.push(...javaBench(started.namesrvAddr, `BenchJava${round}`, libDir));
      };
      if (round % 2 === 0) {
        await runNode();
        runJava();
      } else {
        runJava();
        await runNode();
      }
    }
    const ops: Measurement['op'][] = ['send-sync', 'send-pipelined', 'pull'];
    const rows = ops.map((op) => {
      const best = (list: Measurement[]): number => Math.max(0, ...list.filter((m) => m.op === op).map((m) => m.messages / m.seconds));
      const nodeRate = best(node);
      const javaRate = best(java);
      return { op, node: nodeRate, java: javaRate, ratio: javaRate > 0 ? nodeRate / javaRate : 0 };
    });
    console.log(`\nRocketMQ ${version}, ${os.cpus().length} cores, ${BODY} B bodies, best of ${ROUNDS} rounds`);
    console.log('operation        node msg/s    java msg/s    node/java');
    for (const r of rows) {
      console.log(`${r.op.padEnd(15)} ${r.node.toFixed(0).padStart(11)}   ${r.java.toFixed(0).padStart(11)}    ${r.ratio.toFixed(2).padStart(8)}`);
    }
    const resultsDir = path.join(root, 'bench', 'results');
    fs.mkdirSync(resultsDir, { recursive: true });
    const record = { at: new Date().toISOString(), version, cores: os.cpus().length, body: BODY, window: WINDOW, measurements: [...node, ...java], rows };
    fs.appendFileSync(path.join(resultsDir, 'rocketmq.jsonl'), `${JSON.stringify(record)}\n`);
    fs.writeFileSync(path.join(resultsDir, 'rocketmq.svg'), svgPlot(rows));
    log(`results appended to bench/results/rocketmq.jsonl, plot bench/results/rocketmq.svg`);
  } finally {
    await stop();
  }
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
