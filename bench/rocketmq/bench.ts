// npm run bench:rocketmq
// Starts its own RocketMQ (work dir .rocketmq/bench), then measures, against the same broker:
//   1. the iot-bridge client and the Java client (rocketmq-client of the broker's version, via
//      bench/rocketmq/JavaClientBench.java compiled here with javac) doing the same work: sync send,
//      pipelined send (WINDOW in flight), sequential pull by offset; rounds alternate the order and
//      each client's best round counts;
//   2. RocketMQ's own benchmark tools (org.apache.rocketmq:rocketmq-example, benchmark.Producer with
//      WINDOW threads, benchmark.Consumer over a backlog) against the iot-bridge client doing the same.
// Prints tables with the ratio node/java, appends to bench/results/rocketmq.jsonl, writes an SVG plot.
// Options (env): BENCH_SYNC (20000), BENCH_PIPELINED (200000), BENCH_WINDOW (256), BENCH_BODY (256 B),
//   BENCH_WARMUP (10000), BENCH_ROUNDS (2), BENCH_BACKLOG (1500000), BENCH_OFFICIAL=0 to skip part 2,
//   ROCKETMQ_EXAMPLE_VERSION (5.5.0), ROCKETMQ_BENCH_NAMESRV_PORT (25876), ROCKETMQ_BENCH_BROKER_PORT (26911).
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_ROCKETMQ_VERSION, defaultCacheDir, pickFreePorts, startLocalRocketMQ, stopLocalRocketMQ } from '../../scripts/rocketmq/local-rocketmq';
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
const BACKLOG = env('BENCH_BACKLOG', 1_500_000);
const OFFICIAL = process.env.BENCH_OFFICIAL !== '0';
const OFFICIAL_VERSION = process.env.ROCKETMQ_EXAMPLE_VERSION ?? '5.5.0';
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


// ---- RocketMQ's own benchmark tools (rocketmq-example: benchmark.Producer / benchmark.Consumer) ----

function officialLibDir(): string {
  const cache = path.join(path.dirname(defaultCacheDir(DEFAULT_ROCKETMQ_VERSION)), `rocketmq-example-${OFFICIAL_VERSION}`);
  const libDir = path.join(cache, 'lib');
  if (fs.existsSync(path.join(cache, 'complete'))) return libDir;
  log(`fetching org.apache.rocketmq:rocketmq-example:${OFFICIAL_VERSION} through Maven into ${libDir}`);
  const r = spawnSync(
    'mvn',
    ['-q', '-B', '-f', path.join(root, 'bench', 'rocketmq', 'pom.xml'), 'dependency:copy-dependencies', `-Drocketmq.example.version=${OFFICIAL_VERSION}`, `-DoutputDirectory=${libDir}`],
    { encoding: 'utf8', timeout: 10 * 60_000 },
  );
  if (r.status !== 0) throw new Error(`Maven could not fetch rocketmq-example ${OFFICIAL_VERSION}:\n${r.stdout}\n${r.stderr}`);
  fs.writeFileSync(path.join(cache, 'complete'), `${new Date().toISOString()}\n`);
  return libDir;
}

function officialJavaArgs(libDir: string, mainClass: string, args: string[]): string[] {
  return ['-Xms512m', '-Xmx512m', `-Duser.home=${path.join(root, '.rocketmq', 'bench')}`, '-cp', path.join(libDir, '*'), mainClass, ...args];
}

/** Official Producer: `threads` threads of sync sends; its own "[Complete] ... Send TPS" (last 10 s window). */
function officialProducer(libDir: string, namesrvAddr: string, topic: string, count: number, threads: number): number {
  const r = spawnSync(
    'java',
    officialJavaArgs(libDir, 'org.apache.rocketmq.example.benchmark.Producer', ['-n', namesrvAddr, '-t', topic, '-s', String(BODY), '-w', String(threads), '-q', String(count), '-ri', '1000']),
    { encoding: 'utf8', timeout: 10 * 60_000, maxBuffer: 64 * 1024 * 1024 },
  );
  const m = /\[Complete\] Send Total: (\d+) \| Send TPS: (\d+).*Send Failed: (\d+)/.exec(r.stdout ?? '');
  if (!m) throw new Error(`official Producer printed no result:\n${(r.stdout ?? '').slice(-2000)}\n${(r.stderr ?? '').slice(-2000)}`);
  if (Number(m[3]) > 0) log(`official Producer: ${m[3]} of ${m[1]} sends failed (broker busy); its TPS counts successes only`);
  return Number(m[2]);
}

/**
 * Official Consumer (push consumer, 20 threads) over a backlog. It prints "Consume TPS" over a sliding
 * 10-snapshot window once per second; the best window while the backlog lasts is its throughput.
 * The process is ours: it is stopped by its PID once the backlog is consumed (or after a time limit).
 */
function officialConsumer(libDir: string, namesrvAddr: string, topic: string, timeLimitMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'java',
      officialJavaArgs(libDir, 'org.apache.rocketmq.example.benchmark.Consumer', ['-n', namesrvAddr, '-t', topic, '-g', `bench_official_${Date.now()}`, '-ri', '1000']),
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let best = 0;
    let sawTraffic = false;
    let idleReports = 0;
    let buffered = '';
    const finish = (): void => {
      clearTimeout(timer);
      if (child.pid !== undefined && child.exitCode === null) child.kill('SIGTERM');
    };
    const timer = setTimeout(finish, timeLimitMs);
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const m = /Consume TPS: (\d+)/.exec(line);
        if (!m) continue;
        const tps = Number(m[1]);
        if (tps > 0) sawTraffic = true;
        best = Math.max(best, tps);
        idleReports = sawTraffic && tps === 0 ? idleReports + 1 : 0;
        if (idleReports >= 2) finish();
      }
    });
    child.stderr.resume();
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('exit', () => {
      clearTimeout(timer);
      if (best > 0) resolve(best);
      else reject(new Error('official Consumer reported no throughput'));
    });
  });
}

/** Fills a topic quickly (batches of 64, 8 in flight) for the consumer comparison. */
async function prefill(namesrvAddr: string, topic: string, count: number): Promise<void> {
  const client = new RocketMQClient({ namesrvAddr, requestTimeoutMs: 30_000 });
  try {
    const queues = await client.getPublishQueues(topic);
    const body = Buffer.alloc(BODY, 97);
    let sent = 0;
    const worker = async (): Promise<void> => {
      while (sent < count) {
        const n = Math.min(64, count - sent);
        const queue = queues[(sent / 64) % queues.length | 0] as MessageQueue;
        sent += n;
        await client.sendBatch(Array.from({ length: n }, () => ({ topic, body })), { queue });
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  } finally {
    client.close();
  }
}

/**
 * The iot-bridge client doing what the push consumer does: one pull in flight per queue, all queues
 * in parallel. Rate = best 9-second window of 1-second samples, the same measure as the official Consumer.
 */
async function nodeParallelPull(namesrvAddr: string, topic: string, expected: number): Promise<number> {
  const client = new RocketMQClient({ namesrvAddr, requestTimeoutMs: 10_000 });
  let consumed = 0;
  const samples: Array<[number, number]> = [[Date.now(), 0]];
  const sampler = setInterval(() => samples.push([Date.now(), consumed]), 1000);
  try {
    const queues = await client.getSubscribeQueues(topic);
    const deadline = Date.now() + 120_000;
    await Promise.all(
      queues.map(async (q) => {
        let offset = 0;
        while (Date.now() < deadline) {
          const r = await client.pull(q, offset, { maxMessages: 32 });
          if (r.status !== 'FOUND') break;
          consumed += r.messages.length;
          offset = r.nextBeginOffset;
        }
      }),
    );
  } finally {
    clearInterval(sampler);
    client.close();
  }
  samples.push([Date.now(), consumed]);
  if (consumed < expected) throw new Error(`node parallel pull read ${consumed} of ${expected}`);
  let best = 0;
  for (let i = 0; i < samples.length; i++) {
    for (let j = i + 1; j < samples.length; j++) {
      const [t0, c0] = samples[i] as [number, number];
      const [t1, c1] = samples[j] as [number, number];
      if (t1 - t0 >= 9000 || (i === 0 && j === samples.length - 1)) {
        best = Math.max(best, ((c1 - c0) / (t1 - t0)) * 1000);
        break;
      }
    }
  }
  return best;
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
    const ports = await pickFreePorts(env('ROCKETMQ_BENCH_NAMESRV_PORT', 25876), env('ROCKETMQ_BENCH_BROKER_PORT', 26911), 1);
    const started = await startLocalRocketMQ({
      workDir,
      namesrvPort: ports.namesrvPort,
      brokers: [{ name: 'broker-a', port: ports.brokerPort }],
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
    let official: { producer: number; consumer: number; nodeParallelPull: number } | undefined;
    if (OFFICIAL) {
      const officialLib = officialLibDir();
      const admin2 = new RocketMQClient({ namesrvAddr: started.namesrvAddr });
      await admin2.createTopic('BenchOfficialSend', { queueNums: 4 });
      await admin2.createTopic('BenchBacklog', { queueNums: 4 });
      admin2.close();
      log(`official Producer (${WINDOW} threads, ${PIPELINED} messages)`);
      const producer = officialProducer(officialLib, started.namesrvAddr, 'BenchOfficialSend', PIPELINED, WINDOW);
      log(`filling a backlog of ${BACKLOG} messages`);
      await prefill(started.namesrvAddr, 'BenchBacklog', BACKLOG);
      log('official Consumer over the backlog');
      const consumer = await officialConsumer(officialLib, started.namesrvAddr, 'BenchBacklog', 180_000);
      log('iot-bridge client, parallel pull over the same backlog');
      const nodeParallel = await nodeParallelPull(started.namesrvAddr, 'BenchBacklog', BACKLOG);
      official = { producer, consumer, nodeParallelPull: nodeParallel };
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
    if (official) {
      const bestPipelined = rows.find((r) => r.op === 'send-pipelined')?.node ?? 0;
      console.log(`\nRocketMQ's own benchmark tools (rocketmq-example ${OFFICIAL_VERSION}, same broker):`);
      console.log('comparison                                   node msg/s    java msg/s    node/java');
      const line = (name: string, n: number, j: number): void =>
        console.log(`${name.padEnd(44)} ${n.toFixed(0).padStart(11)}   ${j.toFixed(0).padStart(11)}    ${(j > 0 ? n / j : 0).toFixed(2).padStart(8)}`);
      line(`send: ${WINDOW} in flight vs Producer -w ${WINDOW}`, bestPipelined, official.producer);
      line(`consume ${BACKLOG} backlog vs push Consumer`, official.nodeParallelPull, official.consumer);
    }
    const resultsDir = path.join(root, 'bench', 'results');
    fs.mkdirSync(resultsDir, { recursive: true });
    const record = { at: new Date().toISOString(), version, cores: os.cpus().length, body: BODY, window: WINDOW, measurements: [...node, ...java], rows, official };
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
