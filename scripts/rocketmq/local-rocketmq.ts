// Starts and stops a local RocketMQ (namesrv + brokers) for development, tests and benchmarks.
// The jars come from Maven Central through scripts/rocketmq/pom.xml into a cache outside the repo.
// Every process started is recorded in <workDir>/pids.json; stopping only ever signals those PIDs.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { RemotingClient } from '../../src/rocketmq/remoting-client';
import { NameServerClient } from '../../src/rocketmq/route';

export const DEFAULT_ROCKETMQ_VERSION = '5.3.3';

export interface LocalBrokerSpec {
  /** brokerName; also the store sub-directory. */
  name: string;
  /** Main listen port. RocketMQ also uses port-2 (VIP channel) and port+1 (HA). */
  port: number;
}

export interface LocalRocketMQOptions {
  workDir: string;
  namesrvPort: number;
  brokers: LocalBrokerSpec[];
  version?: string;
  cacheDir?: string;
  /** Max time to wait for each broker to appear in the namesrv cluster info. */
  registerTimeoutMs?: number;
  log?: (line: string) => void;
}

interface ProcessRecord {
  role: 'namesrv' | 'broker';
  name: string;
  pid: number;
  ports: number[];
}

interface PidFile {
  namesrvAddr: string;
  processes: ProcessRecord[];
}

export class LocalRocketMQError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LocalRocketMQError';
  }
}

const JDK17_FLAGS = [
  '--add-exports=java.base/sun.nio.ch=ALL-UNNAMED',
  '--add-opens=java.base/java.nio=ALL-UNNAMED',
  '--add-opens=java.base/java.lang=ALL-UNNAMED',
  '--add-opens=java.base/java.util=ALL-UNNAMED',
  '--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED',
];

export function defaultCacheDir(version: string): string {
  const base = process.env.IOT_BRIDGE_CACHE ?? path.join(os.homedir(), '.cache', 'iot-bridge');
  return path.join(base, `rocketmq-${version}`);
}

function pomPath(): string {
  // Works from both scripts/rocketmq (ts-node style) and dist/scripts/rocketmq (compiled).
  const candidates = [
    path.join(__dirname, 'pom.xml'),
    path.join(__dirname, '..', '..', '..', 'scripts', 'rocketmq', 'pom.xml'),
  ];
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new LocalRocketMQError(`scripts/rocketmq/pom.xml not found (looked in ${candidates.join(', ')})`);
  return found;
}

export function checkJava(): void {
  const r = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new LocalRocketMQError(
      'Java was not found on PATH. RocketMQ needs a JDK (17 is tested): install openjdk-17-jdk-headless and retry.',
    );
  }
}

/** Downloads the RocketMQ jars once; later calls reuse the cache. Returns the lib directory. */
export function ensureJars(version: string, cacheDir: string, log: (line: string) => void): string {
  const libDir = path.join(cacheDir, 'lib');
  const marker = path.join(cacheDir, 'complete');
  if (fs.existsSync(marker)) return libDir;
  const mvn = spawnSync('mvn', ['-v'], { encoding: 'utf8' });
  if (mvn.error || mvn.status !== 0) {
    throw new LocalRocketMQError('Maven (mvn) was not found on PATH; it is needed once to download RocketMQ jars. Install maven and retry.');
  }
  log(`fetching RocketMQ ${version} jars through Maven into ${libDir} (first run only)`);
  fs.mkdirSync(libDir, { recursive: true });
  const r = spawnSync(
    'mvn',
    ['-q', '-B', '-f', pomPath(), 'dependency:copy-dependencies', `-Drocketmq.version=${version}`, `-DoutputDirectory=${libDir}`],
    { encoding: 'utf8', timeout: 10 * 60_000 },
  );
  if (r.status !== 0) {
    const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
    throw new LocalRocketMQError(
      `Maven could not fetch RocketMQ ${version} (is Maven Central reachable? proxy settings in ~/.m2/settings.xml?):\n${out}`,
    );
  }
  const jars = fs.readdirSync(libDir).filter((f) => f.endsWith('.jar'));
  if (!jars.some((j) => j.startsWith('rocketmq-broker-'))) {
    throw new LocalRocketMQError(`Maven finished but no rocketmq-broker jar is in ${libDir}`);
  }
  fs.writeFileSync(marker, `${new Date().toISOString()}\n`);
  return libDir;
}

export function assertPortFree(port: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new LocalRocketMQError(
          err.code === 'EADDRINUSE'
            ? `port 127.0.0.1:${port} (${what}) is already in use; stop whatever holds it or choose other ports (see docs/rocketmq.md)`
            : `cannot bind 127.0.0.1:${port} (${what}): ${err.message}`,
        ),
      );
    });
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

async function isPortFree(port: number): Promise<boolean> {
  try {
    await assertPortFree(port, 'probe');
    return true;
  } catch {
    return false;
  }
}

/**
 * Ports for a namesrv and `brokerCount` brokers (broker i listens on brokerPort + 1000 * i and also
 * uses port-2 and port+1). Tries the preferred ports first, then random ones below Linux's
 * ephemeral range, so several checkouts on one machine can run their tests at the same time.
 */
export async function pickFreePorts(preferredNamesrv: number, preferredBroker: number, brokerCount: number): Promise<{ namesrvPort: number; brokerPort: number }> {
  const allFree = async (namesrvPort: number, brokerPort: number): Promise<boolean> => {
    const ports = [namesrvPort];
    for (let i = 0; i < brokerCount; i++) ports.push(...brokerPorts(brokerPort + 1000 * i));
    for (const p of ports) if (!(await isPortFree(p))) return false;
    return true;
  };
  if (await allFree(preferredNamesrv, preferredBroker)) return { namesrvPort: preferredNamesrv, brokerPort: preferredBroker };
  for (let attempt = 0; attempt < 50; attempt++) {
    const namesrvPort = 20000 + Math.floor(Math.random() * 6000);
    const brokerPort = namesrvPort + 3000 + 10;
    if (await allFree(namesrvPort, brokerPort)) return { namesrvPort, brokerPort };
  }
  throw new LocalRocketMQError('no free ports found for RocketMQ below 32768; set the ports explicitly');
}

function brokerPorts(port: number): number[] {
  return [port, port - 2, port + 1];
}

function javaArgs(libDir: string, workDir: string, heap: string, mainClass: string, extra: string[]): string[] {
  return [
    `-Xms${heap}`,
    `-Xmx${heap}`,
    '-XX:+UseG1GC',
    '-XX:MaxDirectMemorySize=512m',
    ...JDK17_FLAGS,
    `-Duser.home=${workDir}`,
    `-Drocketmq.home.dir=${workDir}`,
    '-Drocketmq.client.logUseSlf4j=false',
    // Marker so stop can verify that a recorded PID is still our process before signalling it.
    `-Diot.bridge.workdir=${workDir}`,
    '-cp',
    path.join(libDir, '*'),
    mainClass,
    ...extra,
  ];
}

function readPidFile(workDir: string): PidFile | undefined {
  const file = path.join(workDir, 'pids.json');
  if (!fs.existsSync(file)) return undefined;
  const parsed: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  return parsed as PidFile;
}

function writePidFile(workDir: string, pids: PidFile): void {
  fs.writeFileSync(path.join(workDir, 'pids.json'), `${JSON.stringify(pids, null, 2)}\n`);
}

function isOurProcess(pid: number, workDir: string): boolean {
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes(`-Diot.bridge.workdir=${workDir}`);
  } catch {
    // No /proc (not Linux) or process gone: fall back to "is it alive".
    try {
      process.kill(pid, 0);
      return process.platform !== 'linux';
    } catch {
      return false;
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function tail(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no output)';
  }
}

async function waitForPort(port: number, deadline: number, pid: number, logFile: string, what: string): Promise<void> {
  for (let attempt = 0; Date.now() < deadline && attempt < 10_000; attempt++) {
    if (!isAlive(pid)) {
      throw new LocalRocketMQError(`${what} (pid ${pid}) exited during startup:\n${tail(logFile, 20)}`);
    }
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (open) return;
    await sleep(200);
  }
  throw new LocalRocketMQError(`${what} did not open 127.0.0.1:${port} in time:\n${tail(logFile, 20)}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function spawnJava(args: string[], logFile: string, cwd: string): number {
  const out = fs.openSync(logFile, 'a');
  const child = spawn('java', args, { cwd, detached: true, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  if (child.pid === undefined) throw new LocalRocketMQError(`could not start java (see ${logFile})`);
  child.unref();
  return child.pid;
}

export function brokerConfig(workDir: string, namesrvAddr: string, broker: LocalBrokerSpec): string {
  const store = path.join(workDir, 'store', broker.name);
  return [
    'brokerClusterName=IotBridgeCluster',
    `brokerName=${broker.name}`,
    'brokerId=0',
    'brokerRole=ASYNC_MASTER',
    // SEND_OK only once on disk: cluster mode acknowledges MQTT publishes on SEND_OK.
    'flushDiskType=SYNC_FLUSH',
    'brokerIP1=127.0.0.1',
    'bindAddress=127.0.0.1',
    `listenPort=${broker.port}`,
    `haListenPort=${broker.port + 1}`,
    `namesrvAddr=${namesrvAddr}`,
    `storePathRootDir=${store}`,
    `storePathCommitLog=${path.join(store, 'commitlog')}`,
    'enableLmq=true',
    'enableMultiDispatch=true',
    'autoCreateTopicEnable=true',
    'autoCreateSubscriptionGroup=true',
    'defaultTopicQueueNums=4',
    // Small files: tests and laptops should not pre-allocate GiBs. LMQ queues each get a consume-queue file.
    'mappedFileSizeCommitLog=67108864',
    'mappedFileSizeConsumeQueue=120000',
    'mappedFileSizeConsumeQueueExt=1048576',
    'maxMessageSize=8388608',
    'diskMaxUsedSpaceRatio=98',
    'transientStorePoolEnable=false',
    'warmMapedFileEnable=false',
    'traceTopicEnable=false',
    'fileReservedTime=24',
    'flushIntervalCommitLog=200',
    'sendMessageThreadPoolNums=2',
    'pullMessageThreadPoolNums=8',
    'longPollingEnable=true',
    // On 2 shared cores a send can wait in the broker's queue longer than the default 200 ms,
    // which the broker answers with SYSTEM_BUSY; tests and benchmarks should measure, not shed load.
    'waitTimeMillsInSendQueue=1000',
    '',
  ].join('\n');
}

export interface StartedRocketMQ {
  namesrvAddr: string;
  workDir: string;
}

/** Starts namesrv (if not already recorded as running) and every broker given; waits for registration. */
export async function startLocalRocketMQ(options: LocalRocketMQOptions): Promise<StartedRocketMQ> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const version = options.version ?? DEFAULT_ROCKETMQ_VERSION;
  const workDir = path.resolve(options.workDir);
  const namesrvAddr = `127.0.0.1:${options.namesrvPort}`;
  checkJava();
  const libDir = ensureJars(version, options.cacheDir ?? defaultCacheDir(version), log);
  fs.mkdirSync(path.join(workDir, 'logs'), { recursive: true });

  const existing = readPidFile(workDir);
  const live = (existing?.processes ?? []).filter((p) => isOurProcess(p.pid, workDir));
  const pids: PidFile = { namesrvAddr, processes: live };

  if (!live.some((p) => p.role === 'namesrv')) {
    await assertPortFree(options.namesrvPort, 'namesrv');
    const conf = path.join(workDir, 'namesrv.conf');
    fs.writeFileSync(conf, `listenPort=${options.namesrvPort}\nbindAddress=127.0.0.1\n`);
    const logFile = path.join(workDir, 'logs', 'namesrv.out');
    const pid = spawnJava(
      javaArgs(libDir, workDir, '256m', 'org.apache.rocketmq.namesrv.NamesrvStartup', ['-c', conf]),
      logFile,
      workDir,
    );
    pids.processes.push({ role: 'namesrv', name: 'namesrv', pid, ports: [options.namesrvPort] });
    writePidFile(workDir, pids);
    log(`namesrv starting (pid ${pid}) on ${namesrvAddr}`);
    await waitForPort(options.namesrvPort, Date.now() + 60_000, pid, logFile, 'namesrv');
  }

  for (const broker of options.brokers) {
    if (live.some((p) => p.role === 'broker' && p.name === broker.name)) continue;
    await startBrokerProcess(libDir, workDir, namesrvAddr, broker, pids, log);
  }
  writePidFile(workDir, pids);
  await waitRegistered(namesrvAddr, options.brokers.map((b) => b.name), options.registerTimeoutMs ?? 90_000, workDir);
  return { namesrvAddr, workDir };
}

async function startBrokerProcess(
  libDir: string,
  workDir: string,
  namesrvAddr: string,
  broker: LocalBrokerSpec,
  pids: PidFile,
  log: (line: string) => void,
): Promise<void> {
  for (const port of brokerPorts(broker.port)) await assertPortFree(port, `broker ${broker.name}`);
  const conf = path.join(workDir, `${broker.name}.conf`);
  fs.writeFileSync(conf, brokerConfig(workDir, namesrvAddr, broker));
  const logFile = path.join(workDir, 'logs', `${broker.name}.out`);
  const pid = spawnJava(
    javaArgs(libDir, workDir, '768m', 'org.apache.rocketmq.broker.BrokerStartup', ['-c', conf, '-n', namesrvAddr]),
    logFile,
    workDir,
  );
  pids.processes.push({ role: 'broker', name: broker.name, pid, ports: brokerPorts(broker.port) });
  writePidFile(workDir, pids);
  log(`broker ${broker.name} starting (pid ${pid}) on 127.0.0.1:${broker.port}`);
  await waitForPort(broker.port, Date.now() + 90_000, pid, logFile, `broker ${broker.name}`);
}

async function waitRegistered(namesrvAddr: string, brokerNames: string[], timeoutMs: number, workDir: string): Promise<void> {
  const remoting = new RemotingClient({ requestTimeoutMs: 3000 });
  const namesrv = new NameServerClient(remoting, [namesrvAddr]);
  const deadline = Date.now() + timeoutMs;
  let missing = brokerNames;
  try {
    for (let attempt = 0; Date.now() < deadline && attempt < 1000; attempt++) {
      try {
        const info = await namesrv.getClusterInfo();
        missing = brokerNames.filter((n) => !info.brokerAddrTable.has(n));
        if (missing.length === 0) return;
      } catch {
        // namesrv not answering yet; keep waiting until the deadline
      }
      await sleep(500);
    }
  } finally {
    remoting.close();
  }
  const logs = missing.map((n) => `--- ${n}:\n${tail(path.join(workDir, 'logs', `${n}.out`), 15)}`).join('\n');
  throw new LocalRocketMQError(`broker(s) ${missing.join(', ')} not registered at namesrv ${namesrvAddr} within ${timeoutMs} ms\n${logs}`);
}

/** Starts one more broker (or restarts a stopped one) under an already running namesrv. */
export async function startLocalBroker(workDirIn: string, broker: LocalBrokerSpec, version = DEFAULT_ROCKETMQ_VERSION): Promise<void> {
  const workDir = path.resolve(workDirIn);
  const pids = readPidFile(workDir);
  if (!pids) throw new LocalRocketMQError(`no RocketMQ recorded in ${workDir}; start namesrv first`);
  const libDir = ensureJars(version, defaultCacheDir(version), () => undefined);
  pids.processes = pids.processes.filter((p) => isOurProcess(p.pid, workDir));
  if (pids.processes.some((p) => p.role === 'broker' && p.name === broker.name)) return;
  await startBrokerProcess(libDir, workDir, pids.namesrvAddr, broker, pids, () => undefined);
  await waitRegistered(pids.namesrvAddr, [broker.name], 90_000, workDir);
}

async function stopPid(record: ProcessRecord, workDir: string, graceMs: number): Promise<void> {
  if (!isOurProcess(record.pid, workDir)) return;
  try {
    process.kill(record.pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && isAlive(record.pid)) await sleep(100);
  if (isAlive(record.pid) && isOurProcess(record.pid, workDir)) {
    try {
      process.kill(record.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    for (let i = 0; i < 50 && isAlive(record.pid); i++) await sleep(100);
  }
  // Ports are released a moment after the process dies.
  for (const port of record.ports) {
    for (let i = 0; i < 50; i++) {
      try {
        await assertPortFree(port, record.name);
        break;
      } catch {
        await sleep(100);
      }
    }
  }
}

/** Stops one broker by its recorded PID (for restart tests). */
export async function stopLocalBroker(workDirIn: string, brokerName: string, graceMs = 15_000): Promise<void> {
  const workDir = path.resolve(workDirIn);
  const pids = readPidFile(workDir);
  if (!pids) return;
  for (const p of pids.processes.filter((r) => r.role === 'broker' && r.name === brokerName)) {
    await stopPid(p, workDir, graceMs);
  }
  pids.processes = pids.processes.filter((r) => !(r.role === 'broker' && r.name === brokerName));
  writePidFile(workDir, pids);
}

/** Stops exactly the processes recorded in <workDir>/pids.json: brokers first, then namesrv. */
export async function stopLocalRocketMQ(workDirIn: string, log?: (line: string) => void): Promise<number> {
  const workDir = path.resolve(workDirIn);
  const pids = readPidFile(workDir);
  if (!pids) return 0;
  const ordered = [...pids.processes.filter((p) => p.role === 'broker'), ...pids.processes.filter((p) => p.role === 'namesrv')];
  await Promise.all(ordered.filter((p) => p.role === 'broker').map((p) => stopPid(p, workDir, 15_000)));
  for (const p of ordered.filter((r) => r.role === 'namesrv')) await stopPid(p, workDir, 10_000);
  for (const p of ordered) log?.(`stopped ${p.role} ${p.name} (pid ${p.pid})`);
  fs.rmSync(path.join(workDir, 'pids.json'), { force: true });
  return ordered.length;
}
