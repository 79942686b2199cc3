import net from 'node:net';
import assert from 'node:assert/strict';
import mqttPacket from 'mqtt-packet';
import type { MqttClient } from 'mqtt';
import type { ConnackPacket, ConnectPacket, Packet, ProtocolVersion, PublishPacket, QoS, SubackPacket } from '../src/protocol/packets';
import { startTestBroker, type Collected } from './helpers';
import { waitUntil } from './guarantees/wait';

export type TestBroker = Awaited<ReturnType<typeof startTestBroker>>;

/**
 * Starts a broker, runs `fn`, and always stops the broker (and any clients registered on the way).
 * A registered raw client that got malformed bytes from the broker fails the test here at the latest.
 */
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
    for (const c of clients) if (c instanceof RawClient) c.assertWellFormed();
  } finally {
    for (const c of clients) closeQuietly(c);
    await b.stop();
  }
}

type Closable = MqttClient | RawClient;

function closeQuietly(c: Closable): void {
  if (c instanceof RawClient) c.socket.destroy();
  else c.end(true);
}

type PacketOf<C extends Packet['cmd']> = Extract<Packet, { cmd: C }>;

/** Packets only a client sends: a broker that sends one is broken (MQTT 5 §2.1.2). */
const CLIENT_ONLY: ReadonlySet<Packet['cmd']> = new Set(['connect', 'subscribe', 'unsubscribe', 'pingreq']);

/** Where "nothing arrived" is decided: a PINGRESP to a PINGREQ sent then, or a packet the test waits for. */
export type Marker = 'ping' | (() => Promise<Packet>);

/**
 * A raw MQTT client over a real TCP socket, for the tests that need exact control:
 * withholding acks, checking DUP flags and packet ids, re-sending a PUBLISH with the same id.
 * It never acknowledges anything on its own.
 *
 * Every byte from the broker is parsed: the stream is cut into frames by their fixed header and
 * each frame must be exactly one well-formed packet a server may send. Anything else (or a
 * connection closed in the middle of a packet) fails the pending wait and every later one, and
 * `destroy`/`disconnect` (and `withBroker`) report it, so no test passes over a malformed packet.
 */
export class RawClient {
  readonly received: Packet[] = [];
  private readonly taken = new Set<Packet>();
  private readonly listeners = new Set<() => void>();
  private nextId = 1;
  private readonly handlers: ((p: Packet) => void)[] = [];
  private readonly parser;
  private parsed: Packet[] = [];
  private parserError: Error | null = null;
  private pendingBytes: Buffer = Buffer.alloc(0);
  closed = false;
  /** The first malformed input from the broker; once set, nothing after it is parsed. */
  malformed: Error | null = null;
  readonly closedPromise: Promise<void>;

  private constructor(
    readonly socket: net.Socket,
    readonly protocolVersion: ProtocolVersion,
  ) {
    this.parser = mqttPacket.parser({ protocolVersion });
    this.parser.on('packet', (p: Packet) => this.parsed.push(p));
    this.parser.on('error', (e: Error) => (this.parserError ??= e));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => undefined);
    this.closedPromise = new Promise((resolve) =>
      socket.once('close', () => {
        if (this.pendingBytes.length > 0 && !this.malformed) {
          this.fail(`connection closed in the middle of a packet: ${this.pendingBytes.toString('hex')}`);
        }
        this.closed = true;
        this.notify();
        resolve();
      }),
    );
  }

  /** Opens a TCP connection to 127.0.0.1:port (no CONNECT sent yet). */
  static open(port: number, protocolVersion: ProtocolVersion = 4): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        socket.setNoDelay(true);
        resolve(new RawClient(socket, protocolVersion));
      });
    });
  }

  /** Opens a connection, sends CONNECT and waits for CONNACK (which it returns, refused or not). */
  static async connect(port: number, protocolVersion: ProtocolVersion, connect: ConnectFields): Promise<{ client: RawClient; connack: ConnackPacket }> {
    const client = await RawClient.open(port, protocolVersion);
    try {
      const connack = await client.sendConnect(connect);
      return { client, connack };
    } catch (e) {
      await client.destroy().catch(() => undefined); // as a client that gives up waiting for CONNACK does
      throw e;
    }
  }

  /** Connects and subscribes to `filter` at QoS 0; resolves once the SUBACK is in. */
  static async subscriber(port: number, clientId: string, filter: string, protocolVersion: ProtocolVersion = 5): Promise<RawClient> {
    const { client } = await RawClient.connect(port, protocolVersion, { clientId });
    await client.subscribe(filter, 0);
    return client;
  }

  async sendConnect(connect: ConnectFields): Promise<ConnackPacket> {
    this.send({
      cmd: 'connect',
      protocolId: this.protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: this.protocolVersion,
      clean: true,
      keepalive: 0,
      ...connect,
    });
    return this.take('connack');
  }

  /** Calls `handler` for every packet received so far and from now on (in addition to recording it). */
  onPacket(handler: (p: Packet) => void): void {
    for (const p of this.received) handler(p);
    this.handlers.push(handler);
  }

  send(packet: Packet): void {
    if (this.closed || this.socket.destroyed) return;
    this.socket.write(mqttPacket.generate(packet, { protocolVersion: this.protocolVersion }));
  }

  /** Writes bytes as they are: for packets mqtt-packet will not generate. */
  writeRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** A fresh packet id for requests (SUBSCRIBE etc.); publish tests choose their own. */
  id(): number {
    return this.nextId++;
  }

  async subscribe(filter: string, qos: QoS, extra: { nl?: boolean; rap?: boolean; rh?: number } = {}): Promise<SubackPacket> {
    const messageId = this.id();
    this.send({ cmd: 'subscribe', messageId, subscriptions: [{ topic: filter, qos, ...extra }] });
    return this.take('suback', (p) => p.messageId === messageId);
  }

  publish(topic: string, payload: string | Buffer, qos: QoS, messageId?: number, extra: Partial<PublishPacket> = {}): void {
    this.send({ cmd: 'publish', topic, payload, qos, dup: false, retain: false, messageId, ...extra });
  }

  /**
   * Sends PINGREQ and waits for PINGRESP. The broker handles a connection's packets in order and
   * answers PINGREQ at once, so whatever it had to send this connection before has arrived.
   */
  async ping(timeoutMs = 5000): Promise<PacketOf<'pingresp'>> {
    const from = this.received.length; // an earlier PINGRESP nobody took is not this one
    this.send({ cmd: 'pingreq' });
    return this.take('pingresp', (p) => this.received.indexOf(p) >= from, timeoutMs);
  }

  /**
   * Fails if a packet of type `cmd` that no `take` claimed arrived before the marker: by default
   * the PINGRESP to a PINGREQ sent now (see `ping`), else the packet the given function waits for
   * (a later message on the same topic from the same publisher, which must come after).
   * For a message another connection causes, first make sure the broker has handled that
   * connection's packets (its acknowledgement, or its own `ping`).
   */
  async expectNothingBefore(marker: Marker = 'ping', cmd: Packet['cmd'] = 'publish'): Promise<void> {
    const mark = marker === 'ping' ? await this.ping() : await marker();
    const before = this.received.slice(0, this.received.indexOf(mark));
    const unexpected = before.filter((p) => p.cmd === cmd && !this.taken.has(p));
    if (unexpected.length > 0) throw new Error(`unexpected ${cmd} before the ${mark.cmd}: ${this.summary(unexpected)}`);
  }

  /** Waits (bounded) for the first received, not yet taken packet of type `cmd` matching `pred`. */
  take<C extends Packet['cmd']>(cmd: C, pred: (p: PacketOf<C>) => boolean = () => true, timeoutMs = 5000): Promise<PacketOf<C>> {
    const find = (): PacketOf<C> | undefined => {
      for (const p of this.received) {
        if (p.cmd === cmd && !this.taken.has(p) && pred(p as PacketOf<C>)) {
          this.taken.add(p);
          return p as PacketOf<C>;
        }
      }
      return undefined;
    };
    return new Promise((resolve, reject) => {
      const check = () => {
        const p = find();
        if (p) {
          done();
          resolve(p);
        } else if (this.malformed) {
          done();
          reject(this.malformed);
        } else if (this.closed) {
          done();
          reject(new Error(`connection closed while waiting for ${cmd}; received: ${this.summary()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${cmd} within ${timeoutMs} ms; received: ${this.summary()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Takes `count` packets of type `cmd`, in arrival order, each waited for up to `timeoutMs`. */
  async takeMany<C extends Packet['cmd']>(cmd: C, count: number, timeoutMs = 5000): Promise<PacketOf<C>[]> {
    const out: PacketOf<C>[] = [];
    for (let i = 0; i < count; i++) out.push(await this.take(cmd, undefined, timeoutMs));
    return out;
  }

  /** Received packets of one type (taken or not). */
  all<C extends Packet['cmd']>(cmd: C): PacketOf<C>[] {
    return this.received.filter((p): p is PacketOf<C> => p.cmd === cmd);
  }

  /** Received packets no `take` has claimed, in arrival order. */
  untaken(): Packet[] {
    return this.received.filter((p) => !this.taken.has(p));
  }

  /** Waits (bounded) until the broker closes the connection; fails if it sent malformed bytes. */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`connection not closed within ${timeoutMs} ms; received: ${this.summary()}`)), timeoutMs);
    });
    try {
      await Promise.race([this.closedPromise, timeout]);
    } finally {
      clearTimeout(timer);
    }
    this.assertWellFormed();
  }

  /** Cuts the connection without DISCONNECT (an ungraceful disconnect for the broker). */
  async destroy(): Promise<void> {
    this.socket.destroy();
    await this.closedPromise;
    this.assertWellFormed();
  }

  /** Sends DISCONNECT and waits for the close. */
  async disconnect(reasonCode?: number, properties?: { sessionExpiryInterval?: number }): Promise<void> {
    if (!this.closed) this.send({ cmd: 'disconnect', reasonCode, properties });
    this.socket.end();
    await this.waitClosed();
  }

  /** Throws the malformed input seen from the broker, if any. */
  assertWellFormed(): void {
    if (this.malformed) throw this.malformed;
  }

  summary(packets: Packet[] = this.received): string {
    return packets
      .map((p) => {
        const parts: string[] = [p.cmd];
        if (p.messageId !== undefined) parts.push(`id=${p.messageId}`);
        if (p.cmd === 'publish') parts.push(`dup=${p.dup}`, `qos=${p.qos}`, `topic=${p.topic}`, `payload=${p.payload.toString()}`);
        if ('reasonCode' in p && p.reasonCode !== undefined) parts.push(`rc=0x${p.reasonCode.toString(16)}`);
        return parts.join(' ');
      })
      .join(', ');
  }

  private onData(chunk: Buffer): void {
    if (this.malformed) return;
    let data = this.pendingBytes.length > 0 ? Buffer.concat([this.pendingBytes, chunk]) : chunk;
    for (;;) {
      const size = frameSize(data);
      if (size === 'malformed') return this.fail(`malformed remaining length: ${data.subarray(0, 5).toString('hex')}`);
      if (size === undefined || data.length < size) break;
      const frame = data.subarray(0, size);
      data = data.subarray(size);
      const packet = this.parseFrame(frame);
      if (!packet) return;
      this.received.push(packet);
      for (const h of this.handlers) h(packet);
    }
    this.pendingBytes = Buffer.from(data);
    this.notify();
  }

  /** One whole frame to one packet, or null (and `malformed` set). */
  private parseFrame(frame: Buffer): Packet | null {
    this.parsed = [];
    this.parserError = null;
    const leftover = this.parser.parse(frame);
    const packet = this.parsed[0];
    const error = this.parserError as Error | null; // set by the parser's callback
    if (error || this.parsed.length !== 1 || leftover !== 0) {
      this.fail(`${error?.message ?? 'not exactly one packet'} in ${frame.toString('hex')}`);
      return null;
    }
    if (CLIENT_ONLY.has(packet.cmd)) {
      this.fail(`the broker sent ${packet.cmd}, which only a client may send`);
      return null;
    }
    // mqtt-packet stops reading a packet where its fields end: bytes beyond them would go unseen.
    let encoded: Buffer;
    try {
      encoded = mqttPacket.generate(packet, { protocolVersion: this.protocolVersion });
    } catch (e) {
      this.fail(`${packet.cmd} cannot be encoded again (${(e as Error).message}): ${frame.toString('hex')}`);
      return null;
    }
    if (encoded.length !== frame.length) {
      this.fail(`${packet.cmd} of ${frame.length} bytes holds ${encoded.length} bytes of fields: ${frame.toString('hex')}`);
      return null;
    }
    return packet;
  }

  private fail(reason: string): void {
    this.malformed ??= new Error(`malformed input from the broker: ${reason}; received before: ${this.summary()}`);
    this.notify();
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }
}

type ConnectFields = Omit<Partial<ConnectPacket>, 'cmd' | 'protocolId' | 'protocolVersion'> & { clientId: string };

/** The size of the frame at the start of `data`; undefined while its fixed header is incomplete. */
function frameSize(data: Buffer): number | undefined | 'malformed' {
  let remaining = 0;
  let multiplier = 1;
  for (let i = 1; i <= 4; i++) {
    if (i >= data.length) return undefined;
    const byte = data[i];
    remaining += (byte & 0x7f) * multiplier;
    multiplier *= 128;
    if ((byte & 0x80) === 0) {
      // MQTT-1.5.5-1: the minimum number of bytes.
      if (i > 1 && byte === 0) return 'malformed';
      return 1 + i + remaining;
    }
  }
  return 'malformed';
}

/** The text payloads of received PUBLISH packets, in arrival order. */
export function payloads(packets: PublishPacket[]): string[] {
  return packets.map((p) => p.payload.toString());
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

/** Resolves once `event` fires on the client; rejects after `timeoutMs`. */
export function once(client: MqttClient, event: 'close' | 'connect' | 'offline' | 'end', timeoutMs = 5000): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve) => client.once(event, () => resolve())),
    timeoutMs,
    `no '${event}' within ${timeoutMs} ms`,
  );
}

/**
 * mqtt.js: sends PINGREQ on the client's connection and resolves at the PINGRESP. As with
 * `RawClient.ping`, whatever the broker had to send this connection before has then arrived.
 * (mqtt.js sends its own PINGREQ once per keep-alive period, 60 s by default: longer than a test.)
 */
export function pingBroker(client: MqttClient, timeoutMs = 5000): Promise<void> {
  let onPacket = (_p: Packet): void => undefined;
  const pong = new Promise<void>((resolve) => {
    onPacket = (p) => {
      if (p.cmd === 'pingresp') resolve();
    };
  });
  client.on('packetreceive', onPacket);
  client.sendPing();
  return withTimeout(pong, timeoutMs, `no PINGRESP within ${timeoutMs} ms`).finally(() => client.off('packetreceive', onPacket));
}

/**
 * mqtt.js counterpart of `RawClient.expectNothingBefore`: fails if, by the time the broker
 * answers a PINGREQ sent now, more PUBLISH packets reached `client` than `got.messages` holds.
 * The packets are counted, not the messages: mqtt.js hands a QoS 2 message over only at its
 * PUBREL, which may come after the PINGRESP. For a message another connection causes, first make
 * sure the broker has handled that connection's packets (its acknowledgement, or `pingBroker`).
 */
export async function expectNothingMore(client: MqttClient, got: Collected): Promise<void> {
  await pingBroker(client);
  const extra = got.arrived.slice(got.messages.length);
  assert.equal(got.arrived.length, got.messages.length, `unexpected PUBLISH: ${extra.map((p) => `${p.topic} ${p.payload.toString()}`).join(', ')}`);
}

let markers = 0;

/**
 * mqtt.js: publishes a marker message at QoS 1 on `topic` through `publisher` and waits until it
 * reaches the client `got` collects for (which must be subscribed to `topic`); returns the
 * PUBLISH packets that arrived there before it. The broker routes messages in the order it
 * handles them and sends each client its queue in order, so whatever it routed to that client
 * before the marker (a will, a handed-over message) has arrived by then.
 */
export async function arrivedBeforeMarker(publisher: MqttClient, topic: string, got: Collected, timeoutMs = 5000): Promise<PublishPacket[]> {
  const payload = `marker-${++markers}`;
  const isMarker = (p: PublishPacket) => p.payload.toString() === payload;
  await publisher.publishAsync(topic, payload, { qos: 1 });
  await waitUntil(() => got.arrived.some(isMarker), `marker ${payload} on ${topic}`, timeoutMs);
  return got.arrived.slice(0, got.arrived.findIndex(isMarker));
}
