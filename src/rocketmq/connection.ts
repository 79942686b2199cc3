// One TCP connection to one RocketMQ address (broker or namesrv), with opaque-based multiplexing.
// The socket is opened lazily and re-opened after a failure, with exponential backoff between attempts.
// In-flight requests fail when the socket dies; they are never re-sent here, because only the caller
// knows whether a request is idempotent.
import * as net from 'node:net';
import {
  CLIENT_VERSION,
  DEFAULT_MAX_FRAME_BYTES,
  ExtFields,
  FLAG_ONEWAY,
  FLAG_RESPONSE,
  FrameDecoder,
  LANGUAGE_OTHER,
  RemotingCommand,
  SerializeType,
  encodeCommand,
  isResponse,
} from './codec';
import {
  ClientClosedError,
  RemotingConnectError,
  RemotingConnectionClosedError,
  RemotingProtocolError,
  RemotingTimeoutError,
  RemotingTooManyRequestsError,
  ResponseCode,
} from './errors';

export interface ConnectionOptions {
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  /** Requests in flight per connection; beyond this, requests are refused (bounded memory). */
  maxPendingRequests: number;
  /** Request body bytes in flight per connection; beyond this, requests are refused. */
  maxPendingBytes: number;
  /** Largest frame accepted from the peer; larger announcements close the connection. */
  maxFrameBytes: number;
  reconnectBackoffMinMs: number;
  reconnectBackoffMaxMs: number;
  serializeType: SerializeType;
  /** Called when a connection is closed because of an error (malformed frame, socket error). */
  onConnectionError?: (address: string, err: Error) => void;
}

export const DEFAULT_CONNECTION_OPTIONS: ConnectionOptions = {
  connectTimeoutMs: 3000,
  requestTimeoutMs: 5000,
  maxPendingRequests: 20_000,
  maxPendingBytes: 256 * 1024 * 1024,
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  reconnectBackoffMinMs: 100,
  reconnectBackoffMaxMs: 5000,
  serializeType: SerializeType.ROCKETMQ,
};

export interface RequestSpec {
  code: number;
  extFields: ExtFields;
  body?: Buffer;
  remark?: string;
}

interface Pending {
  resolve: (cmd: RemotingCommand) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  code: number;
  bytes: number;
}

export function parseAddress(address: string): { host: string; port: number } {
  const idx = address.lastIndexOf(':');
  const port = Number(address.slice(idx + 1));
  if (idx <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new RemotingConnectError(address, `invalid address "${address}" (expected host:port)`);
  }
  return { host: address.slice(0, idx).replace(/^\[(.*)\]$/, '$1'), port };
}

export class RemotingConnection {
  private socket: net.Socket | undefined;
  private connecting: Promise<net.Socket> | undefined;
  private readonly pending = new Map<number, Pending>();
  private pendingBytes = 0;
  private waitingForSocket = 0;
  private nextOpaque = 1;
  private consecutiveFailures = 0;
  private nextAttemptAt = 0;
  private closed = false;
  private corked: net.Socket | undefined;

  constructor(
    readonly address: string,
    private readonly options: ConnectionOptions = DEFAULT_CONNECTION_OPTIONS,
  ) {}

  get inFlight(): number {
    return this.pending.size + this.waitingForSocket;
  }

  get isOpen(): boolean {
    return this.socket !== undefined && !this.socket.destroyed;
  }

  /** Sends a request and resolves with the response command (whatever its code). */
  async request(spec: RequestSpec, timeoutMs: number = this.options.requestTimeoutMs): Promise<RemotingCommand> {
    const bytes = spec.body?.length ?? 0;
    const inFlight = this.pending.size + this.waitingForSocket;
    if (inFlight >= this.options.maxPendingRequests) {
      throw new RemotingTooManyRequestsError(`${this.address}: ${inFlight} requests in flight (limit ${this.options.maxPendingRequests})`);
    }
    if (this.pendingBytes + bytes > this.options.maxPendingBytes && inFlight > 0) {
      throw new RemotingTooManyRequestsError(`${this.address}: ${this.pendingBytes} request bytes in flight (limit ${this.options.maxPendingBytes})`);
    }
    const deadline = Date.now() + timeoutMs;
    // Reserve the bytes now: requests waiting for the socket count against the limits too.
    this.pendingBytes += bytes;
    let socket = this.socket;
    if (socket === undefined || socket.destroyed) {
      this.waitingForSocket++;
      try {
        socket = await this.open(deadline);
      } catch (err) {
        this.pendingBytes -= bytes;
        throw err;
      } finally {
        this.waitingForSocket--;
      }
      if (this.closed || socket.destroyed) {
        this.pendingBytes -= bytes;
        throw this.closed
          ? new ClientClosedError(`connection to ${this.address} closed by the client`)
          : new RemotingConnectionClosedError(this.address, `connection to ${this.address} closed before the request was written`);
      }
    }
    const openSocket = socket;
    const opaque = this.allocateOpaque();
    const cmd = this.command(spec, opaque, 0);
    return new Promise<RemotingCommand>((resolve, reject) => {
      const remaining = Math.max(1, deadline - Date.now());
      const timer = setTimeout(() => {
        const p = this.pending.get(opaque);
        if (p) {
          this.settle(opaque, p);
          reject(new RemotingTimeoutError(this.address, timeoutMs, `${this.address}: no response to request ${spec.code} within ${timeoutMs} ms`));
        }
      }, remaining);
      this.pending.set(opaque, { resolve, reject, timer, code: spec.code, bytes });
      this.write(openSocket, cmd);
    });
  }

  /** Fire-and-forget request (flag ONEWAY): the broker sends no response. */
  async oneway(spec: RequestSpec, timeoutMs: number = this.options.requestTimeoutMs): Promise<void> {
    const socket = this.socket !== undefined && !this.socket.destroyed ? this.socket : await this.open(Date.now() + timeoutMs);
    this.write(socket, this.command(spec, this.allocateOpaque(), FLAG_ONEWAY));
  }

  close(): void {
    this.closed = true;
    this.teardown(new ClientClosedError(`connection to ${this.address} closed by the client`));
  }

  private command(spec: RequestSpec, opaque: number, flag: number): RemotingCommand {
    return {
      code: spec.code,
      language: LANGUAGE_OTHER,
      version: CLIENT_VERSION,
      opaque,
      flag,
      remark: spec.remark,
      extFields: spec.extFields,
      body: spec.body,
    };
  }

  private allocateOpaque(): number {
    const opaque = this.nextOpaque;
    this.nextOpaque = this.nextOpaque >= 0x7fffffff ? 1 : this.nextOpaque + 1;
    return opaque;
  }

  private write(socket: net.Socket, cmd: RemotingCommand): void {
    const parts = encodeCommand(cmd, this.options.serializeType);
    // Every frame written in the same tick leaves in one writev: concurrent requests (pipelined
    // sends, pulls on several queues) then cost one syscall instead of one each.
    if (this.corked !== socket) {
      this.corked = socket;
      socket.cork();
      process.nextTick(() => {
        this.corked = undefined;
        socket.uncork();
      });
    }
    for (const part of parts) socket.write(part);
  }

  private open(deadline: number): Promise<net.Socket> {
    if (this.closed) return Promise.reject(new ClientClosedError(`connection to ${this.address} is closed`));
    if (!this.connecting) {
      this.connecting = this.connect(deadline).finally(() => {
        this.connecting = undefined;
      });
    }
    return this.connecting;
  }

  private async connect(deadline: number): Promise<net.Socket> {
    const wait = this.nextAttemptAt - Date.now();
    if (wait > 0) {
      if (Date.now() + wait > deadline) {
        throw new RemotingConnectError(
          this.address,
          `${this.address} is unreachable (${this.consecutiveFailures} failed attempts); next attempt in ${wait} ms`,
        );
      }
      await new Promise((r) => setTimeout(r, wait));
    }
    if (this.closed) throw new ClientClosedError(`connection to ${this.address} is closed`);
    const { host, port } = parseAddress(this.address);
    const connectTimeout = Math.max(1, Math.min(this.options.connectTimeoutMs, deadline - Date.now()));
    try {
      const socket = await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host, port });
        const timer = setTimeout(() => {
          s.destroy();
          reject(new RemotingConnectError(this.address, `connect to ${this.address} timed out after ${connectTimeout} ms`));
        }, connectTimeout);
        s.once('connect', () => {
          clearTimeout(timer);
          s.removeAllListeners('error');
          resolve(s);
        });
        s.once('error', (err) => {
          clearTimeout(timer);
          reject(new RemotingConnectError(this.address, `connect to ${this.address} failed: ${err.message}`, { cause: err }));
        });
      });
      if (this.closed) {
        socket.destroy();
        throw new ClientClosedError(`connection to ${this.address} is closed`);
      }
      this.consecutiveFailures = 0;
      this.nextAttemptAt = 0;
      this.attach(socket);
      return socket;
    } catch (err) {
      this.consecutiveFailures++;
      const backoff = Math.min(
        this.options.reconnectBackoffMaxMs,
        this.options.reconnectBackoffMinMs * 2 ** Math.min(this.consecutiveFailures - 1, 16),
      );
      // Jitter spreads reconnects of many clients after a broker restart.
      this.nextAttemptAt = Date.now() + Math.round(backoff * (0.5 + Math.random() / 2));
      throw err;
    }
  }

  private attach(socket: net.Socket): void {
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    const decoder = new FrameDecoder(this.options.maxFrameBytes);
    this.socket = socket;
    socket.on('data', (data: Buffer) => {
      let commands: RemotingCommand[];
      try {
        commands = decoder.push(data);
      } catch (err) {
        const error =
          err instanceof RemotingProtocolError ? err : new RemotingProtocolError(`undecodable frame: ${(err as Error).message}`);
        const wrapped = new RemotingProtocolError(`malformed frame from ${this.address}, connection closed: ${error.message}`, {
          cause: error,
        });
        this.options.onConnectionError?.(this.address, wrapped);
        this.teardown(wrapped, socket);
        return;
      }
      for (const cmd of commands) this.dispatch(socket, cmd);
    });
    socket.on('error', (err) => {
      this.options.onConnectionError?.(this.address, err);
      this.teardown(new RemotingConnectionClosedError(this.address, `connection to ${this.address} failed: ${err.message}`, { cause: err }), socket);
    });
    socket.on('close', () => {
      this.teardown(new RemotingConnectionClosedError(this.address, `connection to ${this.address} closed by peer`), socket);
    });
  }

  private dispatch(socket: net.Socket, cmd: RemotingCommand): void {
    if (isResponse(cmd)) {
      const p = this.pending.get(cmd.opaque);
      if (!p) return; // late response after a timeout
      this.settle(cmd.opaque, p);
      p.resolve(cmd);
      return;
    }
    // Broker-initiated request (e.g. consumer ids changed, running info). We register no consumers,
    // so answer what expects an answer with "not supported" and drop one-way notifications.
    if ((cmd.flag & FLAG_ONEWAY) !== 0) return;
    this.write(socket, {
      code: ResponseCode.REQUEST_CODE_NOT_SUPPORTED,
      language: LANGUAGE_OTHER,
      version: CLIENT_VERSION,
      opaque: cmd.opaque,
      flag: FLAG_RESPONSE,
      remark: `request code ${cmd.code} not supported by the iot-bridge client`,
      extFields: {},
    });
  }

  private settle(opaque: number, p: Pending): void {
    this.pending.delete(opaque);
    this.pendingBytes -= p.bytes;
    clearTimeout(p.timer);
  }

  /** Closes the socket (if it is still the current one) and fails every in-flight request with `err`. */
  private teardown(err: Error, which?: net.Socket): void {
    if (which !== undefined && which !== this.socket) return;
    const socket = this.socket;
    this.socket = undefined;
    if (socket) {
      socket.removeAllListeners('data');
      socket.destroy();
    }
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) this.pendingBytes -= p.bytes;
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }
}
