import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import mqtt, { type IClientOptions, type MqttClient, type IPublishPacket } from 'mqtt';
import { startBroker, type RunningBroker } from '../src/index';
import { defaultConfig, type Config } from '../src/ops/config';
import { silentLogger, type BrokerHooks } from '../src/broker/options';
import type { Store } from '../src/store/types';
import { MachineStore } from '../src/machine/machine-store';
import type { Clock } from '../src/broker/clock';

export function tempDir(prefix = 'iotb-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Starts an in-process broker on a free port (port 0). */
export async function startTestBroker(
  overrides: Partial<Config> = {},
  extra: { store?: Store; hooks?: BrokerHooks; clock?: Clock } = {},
): Promise<RunningBroker & { config: Config }> {
  const config: Config = {
    ...defaultConfig,
    host: '127.0.0.1',
    port: 0,
    dataDir: overrides.dataDir ?? tempDir(),
    durability: 'relaxed',
    logLevel: 'silent',
    ...overrides,
  };
  // IOTB_TEST_STORE=machine: the store of a worker of several (src/machine/), as the only one.
  const store = extra.store ?? (process.env.IOTB_TEST_STORE === 'machine' && config.store === 'lmdb' && !config.cluster ? machineStore(config) : undefined);
  const running = await startBroker(config, silentLogger, { ...extra, store });
  return { ...running, config };
}

function machineStore(config: Config): Store {
  return new MachineStore({ dataDir: config.dataDir, durability: config.durability, mapSize: config.lmdbMapSize, slot: 0, processes: 1, linkWaitMs: 1000, maxFrameBytes: 1 << 24, log: silentLogger });
}

/**
 * Connects an mqtt.js client and waits for CONNACK. Reconnect is off unless asked for.
 * `setup` attaches listeners before CONNACK: messages a resumed session re-sends in the same
 * read as CONNACK are emitted before this resolves.
 */
export function connect(port: number, options: IClientOptions = {}, setup?: (client: MqttClient) => void): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({ host: '127.0.0.1', port, reconnectPeriod: 0, connectTimeout: 5000, ...options });
    setup?.(client);
    const onError = (e: Error) => {
      client.end(true);
      reject(e);
    };
    client.once('error', onError);
    client.once('connect', () => {
      client.off('error', onError);
      resolve(client);
    });
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

export interface Received {
  topic: string;
  payload: Buffer;
  packet: IPublishPacket;
}

export interface Collected {
  messages: Received[];
  /** Every PUBLISH packet as it arrived, before mqtt.js handles it (a QoS 2 message reaches `messages` only at PUBREL). */
  arrived: IPublishPacket[];
  waitFor(n: number, timeoutMs?: number): Promise<Received[]>;
}

/** Collects messages a client receives; `waitFor(n)` waits (bounded) for the n-th. */
export function collect(client: MqttClient): Collected {
  const messages: Received[] = [];
  const arrived: IPublishPacket[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  client.on('packetreceive', (packet) => {
    if (packet.cmd === 'publish') arrived.push(packet);
  });
  client.on('message', (topic, payload, packet) => {
    messages.push({ topic, payload, packet });
    for (const w of waiters.filter((w) => messages.length >= w.n)) w.resolve();
  });
  return {
    messages,
    arrived,
    waitFor(n, timeoutMs = 5000) {
      if (messages.length >= n) return Promise.resolve(messages);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`expected ${n} messages, got ${messages.length}`)), timeoutMs);
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve(messages);
          },
        });
      });
    },
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function endClient(client: MqttClient, force = false): Promise<void> {
  return new Promise((resolve) => client.end(force, {}, () => resolve()));
}

/** The compiled CLI (tests run from dist/test, so the CLI is dist/src/cli.js). */
export const CLI = path.join(__dirname, '..', 'src', 'cli.js');

export interface BrokerProcess {
  child: ChildProcess;
  port: number;
  output: string[];
  /** kill -9: no shutdown code runs. */
  kill9(): Promise<void>;
  terminate(): Promise<number | null>;
}

/** Runs the broker CLI as a child process and waits for its `listening` line. */
export function spawnBroker(args: string[], timeoutMs = 15000): Promise<BrokerProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'start', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const output: string[] = [];
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`broker did not log 'listening' within ${timeoutMs} ms:\n${output.join('')}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      output.push(chunk.toString());
      const line = output.join('');
      const m = /listening on [^:]+:(\d+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stdout!.on('data', (c: Buffer) => output.push(c.toString()));
        resolve({
          child,
          port: Number(m[1]),
          output,
          async kill9() {
            child.kill('SIGKILL');
            await exited;
          },
          async terminate() {
            child.kill('SIGTERM');
            return exited;
          },
        });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => output.push(c.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with ${code} before listening:\n${output.join('')}`));
    });
  });
}

/**
 * `spawnBroker` with an admin port (or others) picked by `freePort`: a port free when picked may be
 * taken (as the local port of some outgoing connection) before the broker binds it, so a start
 * that fails with EADDRINUSE is tried again with fresh ports, at most 3 times.
 */
export async function spawnBrokerOnFreePort(args: (port: number) => string[], timeoutMs?: number): Promise<{ proc: BrokerProcess; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return { proc: await spawnBroker(args(port), timeoutMs), port };
    } catch (e) {
      if (attempt >= 3 || !(e as Error).message.includes('EADDRINUSE')) throw e;
    }
  }
}

/** `iot-bridge passwd FILE USER ...args` with the compiled CLI; fails the test if it does not exit 0. */
export function passwd(file: string, user: string, ...args: string[]): void {
  const r = spawnSync(process.execPath, [CLI, 'passwd', file, user, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`iot-bridge passwd exited with ${r.status}: ${r.stderr}`);
}

/** A port nobody listens on right now (options such as the admin port need a real one; 0 turns them off). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Whether the given programs (Mosquitto's clients, Chromium) are installed: false when they are,
 * else the reason to skip, naming the Debian `packages` that bring them. Under CI, which installs
 * them (.ci/run), a missing one fails the file instead.
 */
export function skipWithout(bins: string[], packages = ['mosquitto', 'mosquitto-clients']): false | string {
  const missing = bins.filter((bin) => spawnSync(bin, ['--help']).error);
  if (missing.length === 0) return false;
  const why = `${missing.join(', ')} not found: apt-get install ${packages.join(' ')}`;
  if (process.env.CI) throw new Error(why);
  return why;
}

/**
 * Runs a client program without blocking the event loop (an in-process broker must keep serving
 * it); killed by its PID after `timeoutMs`.
 */
export function runClient(bin: string, args: string[], timeoutMs = 10_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}
