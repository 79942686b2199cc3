import net from 'node:net';
import mqttPacket, { type IConnectPacket, type Packet, type PacketCmd } from 'mqtt-packet';
import type { MqttClient } from 'mqtt';
import { startTestBroker } from './helpers';

export type TestBroker = Awaited<ReturnType<typeof startTestBroker>>;

/** Starts a broker, runs `fn`, and always stops the broker (and any clients registered on the way). */
export async function withBroker(
  fn: (b: TestBroker, track: <T extends Closable>(c: T) => T) => Promise<void>,
  ...args: Parameters<typeof startTestBroker>
): Promise<void> {
  const b = await startTestBroker(...args);
  const clients: Closable[] = [];
  try {
    await fn(b, (c) => {
      clients.push(c);
      return c;
    });
  } finally {
    for (const c of clients) closeQuietly(c);
    await b.stop();
  }
}

type Closable = MqttClient | RawClient;

function closeQuietly(c: Closable): void {
  if (c instanceof RawClient) c.destroy();
  else c.end(true);
}

/**
 * A raw MQTT client over a plain socket: packets are generated and parsed with mqtt-packet,
 * so tests see exactly what the broker sends (DUP flags, packet ids, reason codes) and can
 * withhold acknowledgements.
 */
export class RawClient {
  readonly received: Packet[] = [];
  closed = false;
  private readonly parser;
  private waiters: (() => void)[] = [];
  private readonly closedPromise: Promise<void>;

  private constructor(
    readonly socket: net.Socket,
    readonly protocolVersion: 3 | 4 | 5,
  ) {
    this.parser = mqttPacket.parser({ protocolVersion });
    this.parser.on('packet', (p: Packet) => {
      this.received.push(p);
      this.wake();
    });
    socket.on('data', (chunk: Buffer) => this.parser.parse(chunk));
    socket.on('error', () => undefined);
    this.closedPromise = new Promise((resolve) =>
      socket.once('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      }),
    );
  }

  /** Opens a socket without sending anything. */
  static open(port: number, protocolVersion: 3 | 4 | 5 = 5): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.off('error', reject);
        resolve(new RawClient(socket, protocolVersion));
      });
      socket.once('error', reject);
    });
  }

  /** Opens a socket, sends CONNECT and waits for the CONNACK (which it returns, refused or not). */
  static async connect(
    port: number,
    connect: Partial<IConnectPacket> & { clientId: string },
  ): Promise<{ client: RawClient; connack: Packet }> {
    const protocolVersion = connect.protocolVersion ?? 5;
    const client = await RawClient.open(port, protocolVersion);
    client.send({
      cmd: 'connect',
      protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion,
      clean: true,
      keepalive: 0,
      ...connect,
    });
    const connack = await client.next('connack');
    return { client, connack };
  }

  /** Connects (MQTT 5) and subscribes to `filter` at QoS 0; resolves once the SUBACK is in. */
  static async subscriber(port: number, clientId: string, filter: string): Promise<RawClient> {
    const { client } = await RawClient.connect(port, { clientId });
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 0 }] });
    await client.next('suback');
    return client;
  }

  send(packet: Packet): void {
    this.socket.write(mqttPacket.generate(packet, { protocolVersion: this.protocolVersion }));
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Takes the first received packet of `cmd` (or any), waiting up to `timeoutMs`. */
  async next(cmd?: PacketCmd, timeoutMs = 5000): Promise<Packet> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.received.findIndex((p) => cmd === undefined || p.cmd === cmd);
      if (i >= 0) return this.received.splice(i, 1)[0];
      if (this.closed) throw new Error(`connection closed while waiting for ${cmd ?? 'a packet'}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${cmd ?? 'packet'} within ${timeoutMs} ms; have ${this.received.map((p) => p.cmd).join(',')}`);
      await this.wait(left);
    }
  }

  /** Collects `count` packets of `cmd`. */
  async take(cmd: PacketCmd, count: number, timeoutMs = 5000): Promise<Packet[]> {
    const out: Packet[] = [];
    for (let i = 0; i < count; i++) out.push(await this.next(cmd, timeoutMs));
    return out;
  }

  /** Waits until the broker closes the socket; rejects after `timeoutMs`. */
  waitClosed(timeoutMs = 5000): Promise<void> {
    return withTimeout(this.closedPromise, timeoutMs, 'socket was not closed by the broker');
  }

  /** Resolves with no packet of `cmd` arriving within `ms` (fails otherwise). */
  async expectNone(cmd: PacketCmd, ms: number): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    const p = this.received.find((x) => x.cmd === cmd);
    if (p) throw new Error(`unexpected ${cmd}: ${JSON.stringify(p)}`);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.push(done);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Resolves once `event` fires on the client, with its arguments; rejects after `timeoutMs`. */
export function once(client: MqttClient, event: 'close' | 'connect' | 'offline' | 'end', timeoutMs = 5000): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve) => client.once(event, () => resolve())),
    timeoutMs,
    `no '${event}' within ${timeoutMs} ms`,
  );
}

/** Polls `cond` until it holds; rejects after `timeoutMs`. */
export async function until(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
