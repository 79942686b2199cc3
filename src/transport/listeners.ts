import http from 'node:http';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Broker } from '../broker/broker';
import { Channel, type ConnectRefusal, type Transport } from '../broker/channel';
import { ReasonCode } from '../protocol/reason-codes';
import { ConnectionRateLimiter, addressKey } from './connection-rate';

/** How long a closing socket may take to flush before it is destroyed. */
const CLOSE_FLUSH_MS = 2000;
/** At most one log line per this interval about connections refused by the per-address rate. */
const RATE_LOG_INTERVAL_MS = 10_000;

const SERVER_BUSY: ConnectRefusal = { reasonCode: ReasonCode.ServerBusy, reason: 'connection limit reached' };
const RATE_EXCEEDED: ConnectRefusal = { reasonCode: ReasonCode.ConnectionRateExceeded, reason: 'too many new connections from this address' };

export interface ListenerOptions {
  host: string;
  port: number;
  /** WebSocket listener port (MQTT over WebSocket on path /mqtt); 0 turns it off. */
  wsPort: number;
  /** MQTT over TLS port; 0 turns it off. Needs tlsCertFile and tlsKeyFile. */
  tlsPort: number;
  tlsCertFile: string;
  tlsKeyFile: string;
  /** CA certificates (PEM) for client certificates: set, the TLS listener requires one signed by them (mutual TLS). */
  tlsCaFile: string;
  /** With `tlsCaFile`: a name in the client certificate is the client's user name (no password needed). */
  tlsCertAsUsername: boolean;
  /** Which name: the subject CN, or the first DNS, email or URI subjectAltName. */
  tlsCertUsernameField: 'cn' | 'san';
  /** Connections accepted at once; further CONNECTs get CONNACK "server busy". */
  maxConnections: number;
  /** New connections one remote address (IP) may open per second; past it their CONNECTs get CONNACK 0x9F. 0: no limit. */
  maxConnectionsPerAddressPerSecond: number;
}

/**
 * Accepts TCP and WebSocket connections and binds each to a Channel. Writes made in one
 * event-loop turn are corked into one syscall; a socket that is over its write budget
 * pauses deliveries until it drains.
 */
export class Listeners {
  private readonly channels = new Set<Channel>();
  private tcp: net.Server | undefined;
  private tls: tls.Server | undefined;
  private ws: WebSocketServer | undefined;
  private wsHttp: http.Server | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private readonly connectionRate: ConnectionRateLimiter | undefined;
  /** Rate refusals not logged yet, and when the last line about them was written. */
  private rateRefusalsUnlogged = 0;
  private rateLoggedAt = -Infinity;

  constructor(
    private readonly broker: Broker,
    private readonly options: ListenerOptions,
  ) {
    const perSecond = options.maxConnectionsPerAddressPerSecond;
    this.connectionRate = perSecond > 0 ? new ConnectionRateLimiter(perSecond) : undefined;
  }

  get connectionCount(): number {
    return this.channels.size;
  }

  async start(): Promise<{ port: number; wsPort: number; tlsPort: number }> {
    this.tcp = net.createServer({ noDelay: true }, (socket) => this.acceptSocket(socket));
    this.tcp.maxConnections = this.options.maxConnections + 1000; // past this the kernel socket is dropped outright
    await listen(this.tcp, this.options.port, this.options.host);
    const port = (this.tcp.address() as net.AddressInfo).port;
    let wsPort = 0;
    if (this.options.wsPort > 0) {
      this.wsHttp = http.createServer((_req, res) => res.writeHead(426).end('MQTT over WebSocket: connect to /mqtt\n'));
      this.ws = new WebSocketServer({ server: this.wsHttp, path: '/mqtt', handleProtocols: selectSubprotocol });
      this.ws.on('connection', (socket, req) => this.acceptWs(socket, req.socket.remoteAddress ?? ''));
      await listen(this.wsHttp, this.options.wsPort, this.options.host);
      wsPort = (this.wsHttp.address() as net.AddressInfo).port;
    }
    let tlsPort = 0;
    if (this.options.tlsPort > 0) {
      this.tls = tls.createServer(this.tlsContext(), (socket) => {
        socket.setNoDelay(true);
        this.acceptSocket(socket, this.options.tlsCertAsUsername ? certificateName(socket, this.options.tlsCertUsernameField) : undefined);
      });
      this.tls.on('tlsClientError', () => undefined); // a failed handshake never reaches a channel
      await listen(this.tls, this.options.tlsPort, this.options.host);
      tlsPort = (this.tls.address() as net.AddressInfo).port;
    }
    this.ticker = setInterval(() => {
      const now = this.broker.clock.now();
      for (const channel of this.channels) channel.tick(now);
      this.connectionRate?.sweep(now);
    }, 1000);
    this.ticker.unref();
    return { port, wsPort, tlsPort };
  }

  /** Certificate, key and (mutual TLS) client CA, read from their files now. */
  private tlsContext(): tls.SecureContextOptions & tls.TlsOptions {
    const o = this.options;
    const context: tls.SecureContextOptions & tls.TlsOptions = { cert: fs.readFileSync(o.tlsCertFile), key: fs.readFileSync(o.tlsKeyFile) };
    if (o.tlsCaFile) {
      // A client without a certificate from this CA fails the handshake: it never reaches a channel.
      Object.assign(context, { ca: fs.readFileSync(o.tlsCaFile), requestCert: true, rejectUnauthorized: true });
    }
    return context;
  }

  /**
   * Re-reads the TLS certificate, key and client CA (SIGHUP): new connections use them, open
   * ones keep theirs. A file that cannot be read leaves the previous ones in place.
   */
  reloadTls(): Error | undefined {
    if (!this.tls) return undefined;
    try {
      this.tls.setSecureContext(this.tlsContext());
      return undefined;
    } catch (e) {
      return e as Error;
    }
  }

  /** Stops accepting, then closes every connection (MQTT 5 clients get DISCONNECT 0x8B). */
  async stop(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    const closed = [this.tcp && closeServer(this.tcp), this.tls && closeServer(this.tls), this.wsHttp && closeServer(this.wsHttp)];
    this.ws?.close();
    for (const channel of [...this.channels]) channel.close(0x8b, 'server shutting down');
    await Promise.all(closed);
  }

  private register(channel: Channel): void {
    this.channels.add(channel);
    this.broker.stats.connections = this.channels.size;
  }

  private unregister(channel: Channel): void {
    this.channels.delete(channel);
    this.broker.stats.connections = this.channels.size;
  }

  /**
   * Whether a new connection is over a limit, decided when it is accepted and answered in CONNACK
   * once its CONNECT is read (the client then learns why, and 3.1.1 clients get code 3).
   */
  private admission(remoteIp: string | undefined, now: number): ConnectRefusal | undefined {
    if (this.channels.size >= this.options.maxConnections) return SERVER_BUSY;
    if (!this.connectionRate || remoteIp === undefined) return undefined;
    const address = addressKey(remoteIp);
    if (this.connectionRate.admit(address, now)) return undefined;
    this.broker.stats.connectionsRateLimited++;
    this.rateRefusalsUnlogged++;
    // A flood must not flood the log: one line per interval, with the count since the last one.
    if (now - this.rateLoggedAt >= RATE_LOG_INTERVAL_MS) {
      this.broker.log.warn(
        { remoteAddress: address, refused: this.rateRefusalsUnlogged, limitPerSecond: this.options.maxConnectionsPerAddressPerSecond },
        'connections refused: too many new connections from one address (maxConnectionsPerAddressPerSecond)',
      );
      this.rateLoggedAt = now;
      this.rateRefusalsUnlogged = 0;
    }
    return RATE_EXCEEDED;
  }

  /** A TCP or TLS socket. */
  private acceptSocket(socket: net.Socket, certificateName?: string): void {
    const transport = new SocketTransport(socket, certificateName);
    const now = this.broker.clock.now();
    const channel = new Channel(this.broker, transport, now, this.admission(socket.remoteAddress, now));
    this.register(channel);
    SOCKET_OWNER.set(socket, { channel, listeners: this });
    socket.on('data', onSocketData);
    socket.on('drain', onSocketDrain);
    socket.on('error', ignoreError); // 'close' follows and ends the channel
    socket.on('close', onSocketClose);
  }

  /** @internal the socket handlers below call back here. */
  socketClosed(channel: Channel): void {
    this.unregister(channel);
    channel.transportClosed();
  }

  private acceptWs(socket: WebSocket, remoteAddress: string): void {
    const transport: Transport = {
      write: (data) => socket.send(data),
      close: () => {
        socket.close();
        setTimeout(() => socket.terminate(), CLOSE_FLUSH_MS).unref();
      },
      get bufferedBytes() {
        return socket.bufferedAmount;
      },
      remoteAddress,
      pause: () => socket.pause(),
      resume: () => socket.resume(),
    };
    const now = this.broker.clock.now();
    const channel = new Channel(this.broker, transport, now, this.admission(remoteAddress || undefined, now));
    this.register(channel);
    socket.on('message', (data: Buffer) => channel.receive(data));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.unregister(channel);
      channel.transportClosed();
    });
  }
}

/**
 * A TCP or TLS connection as the channel sees it. A class, and handlers shared by every socket,
 * rather than an object of closures per connection: those closures and the object's property
 * table were about 1 KiB of each idle connection's memory.
 */
class SocketTransport implements Transport {
  private corked = false;
  private closing = false;

  constructor(
    private readonly socket: net.Socket,
    readonly certificateName?: string,
  ) {}

  /**
   * Writes made while one event is handled (a socket's data and the promise reactions after it)
   * leave in one writev. Not held to the end of the event-loop turn: that batched the one
   * subscriber of 1000 publishers better (one write syscall per message instead of 1.6, measured
   * at 20k msg/s) but delayed every first write, and measured no faster (docs/benchmarks.md).
   */
  write(data: Buffer): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(uncork, this);
    }
    this.socket.write(data);
  }

  uncork(): void {
    this.corked = false;
    this.socket.uncork();
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.socket.end();
    setTimeout(destroySocket, CLOSE_FLUSH_MS, this.socket).unref();
  }

  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  get remoteAddress(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }
}

/** The subject CN, or first usable SAN, of a verified client certificate (mutual TLS), if the handshake checked one. */
function certificateName(socket: tls.TLSSocket, field: 'cn' | 'san'): string | undefined {
  if (!socket.authorized) return undefined;
  const certificate = socket.getPeerCertificate();
  const name = field === 'cn' ? certificate.subject?.CN : firstSanName(certificate.subjectaltname ?? '');
  return typeof name === 'string' && name !== '' ? name : undefined;
}

/** SAN kinds that name a device; IP addresses (and other kinds) name a place, not an identity. */
const SAN_NAME_KINDS = new Set(['DNS', 'email', 'URI']);

/**
 * The first DNS, email or URI entry of Node's subjectaltname text (`DNS:a, IP Address:1.2.3.4,
 * email:b@c`). Node writes a value with a comma or quote in it as a JSON string, so a crafted
 * name cannot pass for two entries.
 */
export function firstSanName(subjectAltName: string): string | undefined {
  const entry = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/y;
  for (let at = 0; at < subjectAltName.length; at = entry.lastIndex) {
    entry.lastIndex = at;
    const m = entry.exec(subjectAltName);
    if (!m) return undefined;
    const [, kind, raw] = m;
    if (SAN_NAME_KINDS.has(kind)) return raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
  }
  return undefined;
}

function uncork(transport: SocketTransport): void {
  transport.uncork();
}

function destroySocket(socket: net.Socket): void {
  socket.destroy();
}

/** Each socket's channel, for the shared handlers (a WeakMap: nothing added to the socket object). */
const SOCKET_OWNER = new WeakMap<net.Socket, { channel: Channel; listeners: Listeners }>();

function onSocketData(this: net.Socket, chunk: Buffer): void {
  SOCKET_OWNER.get(this)?.channel.receive(chunk);
}

function onSocketDrain(this: net.Socket): void {
  SOCKET_OWNER.get(this)?.channel.drained();
}

function onSocketClose(this: net.Socket): void {
  const owner = SOCKET_OWNER.get(this);
  if (!owner) return;
  SOCKET_OWNER.delete(this);
  owner.listeners.socketClosed(owner.channel);
}

function ignoreError(): void {
  // 'close' follows and ends the channel
}

function listen(server: net.Server | http.Server | tls.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function closeServer(server: net.Server | http.Server | tls.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** MQTT over WebSocket asks for "mqtt"; MQTT 3.1 clients ask for "mqttv3.1". */
function selectSubprotocol(offered: Set<string>): string | false {
  if (offered.has('mqtt')) return 'mqtt';
  if (offered.has('mqttv3.1')) return 'mqttv3.1';
  return false;
}
