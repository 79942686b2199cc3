import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import type {
  ConnackPacket,
  ConnectPacket,
  Packet,
  ProtocolVersion,
  PublishPacket,
  QoS,
  SubackPacket,
} from '../../src/protocol/packets';

type PacketOf<C extends Packet['cmd']> = Extract<Packet, { cmd: C }>;

/**
 * A raw MQTT client over a real TCP socket, for the tests that need exact control:
 * withholding acks, checking DUP flags and packet ids, re-sending a PUBLISH with the same id.
 * It never acknowledges anything on its own.
 */
export class RawClient {
  readonly received: Packet[] = [];
  private readonly taken = new Set<Packet>();
  private readonly listeners = new Set<() => void>();
  private nextId = 1;
  private readonly handlers: ((p: Packet) => void)[] = [];
  closed = false;
  parseError: Error | null = null;
  readonly closedPromise: Promise<void>;

  private constructor(
    readonly socket: net.Socket,
    readonly protocolVersion: ProtocolVersion,
  ) {
    const parser = mqttPacket.parser({ protocolVersion });
    parser.on('packet', (p: Packet) => {
      this.received.push(p);
      for (const h of this.handlers) h(p);
      this.notify();
    });
    parser.on('error', (e: Error) => {
      this.parseError ??= e;
    });
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
    socket.on('error', () => undefined);
    this.closedPromise = new Promise((resolve) =>
      socket.once('close', () => {
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

  /** Opens a connection, sends CONNECT and waits for CONNACK. */
  static async connect(
    port: number,
    protocolVersion: ProtocolVersion,
    connect: Partial<ConnectPacket> & { clientId: string },
  ): Promise<{ client: RawClient; connack: ConnackPacket }> {
    const client = await RawClient.open(port, protocolVersion);
    try {
      const connack = await client.sendConnect(connect);
      return { client, connack };
    } catch (e) {
      await client.destroy(); // as a client that gives up waiting for CONNACK does
      throw e;
    }
  }

  async sendConnect(connect: Partial<ConnectPacket> & { clientId: string }): Promise<ConnackPacket> {
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

  /** Sends PINGREQ and waits for PINGRESP: everything the broker sent before it has arrived. */
  async ping(timeoutMs = 5000): Promise<void> {
    this.send({ cmd: 'pingreq' });
    await this.take('pingresp', undefined, timeoutMs);
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
    const found = find();
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const check = () => {
        const p = find();
        if (p) {
          done();
          resolve(p);
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
    });
  }

  /** Received packets of one type (taken or not). */
  all<C extends Packet['cmd']>(cmd: C): PacketOf<C>[] {
    return this.received.filter((p): p is PacketOf<C> => p.cmd === cmd);
  }

  /** Waits (bounded) until the broker closes the connection. */
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
  }

  /** Cuts the connection without DISCONNECT (an ungraceful disconnect for the broker). */
  async destroy(): Promise<void> {
    this.socket.destroy();
    await this.closedPromise;
  }

  /** Sends DISCONNECT and waits for the close. */
  async disconnect(reasonCode?: number, properties?: { sessionExpiryInterval?: number }): Promise<void> {
    if (!this.closed) this.send({ cmd: 'disconnect', reasonCode, properties });
    this.socket.end();
    await this.waitClosed();
  }

  summary(): string {
    return this.received
      .map((p) => {
        const parts: string[] = [p.cmd];
        if (p.messageId !== undefined) parts.push(`id=${p.messageId}`);
        if (p.cmd === 'publish') parts.push(`dup=${p.dup}`, `qos=${p.qos}`, `payload=${p.payload.toString()}`);
        if ('reasonCode' in p && p.reasonCode !== undefined) parts.push(`rc=0x${p.reasonCode.toString(16)}`);
        return parts.join(' ');
      })
      .join(', ');
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }
}

/** The text payloads of received PUBLISH packets, in arrival order. */
export function payloads(packets: PublishPacket[]): string[] {
  return packets.map((p) => p.payload.toString());
}
