import fs from 'node:fs';
import net from 'node:net';
import { Packr } from 'msgpackr';
import type { Logger } from '../broker/options';

/**
 * The links between the worker processes of one machine (docs/multi-process.md): each worker
 * listens on a Unix socket in the data directory and connects to every other one. A worker sends
 * its requests and notices on the connection it opened and reads the replies there; it answers
 * on the connections it accepted. Frames are a 4-byte length and a msgpack array.
 *
 * Written by hand: node:cluster's IPC goes through the primary and serializes to JSON, and no
 * library offers request/reply frames over a local socket without a broker of its own.
 */

const HELLO = 0;
const REQUEST = 1;
const REPLY_OK = 2;
const REPLY_ERROR = 3;
const NOTICE = 4;

export interface LinkHandler {
  /** A request from worker `from`: the reply goes back once the promise settles. */
  request(from: number, body: unknown): Promise<void> | void;
  /** A one-way notice from worker `from`. */
  notice(from: number, body: unknown): void;
  /** Worker `from` opened its link to this one: anything it changed before that was not heard here. */
  joined(from: number): void;
}

export interface PeerLinksOptions {
  dir: string;
  slot: number;
  processes: number;
  /** Largest frame read or written: a bigger one is a bug, and closes the link. */
  maxFrameBytes: number;
  /** How long a request to a worker whose link is down waits for it to come (back) up. */
  linkWaitMs: number;
  log: Logger;
}

interface Pending {
  resolve(): void;
  reject(e: Error): void;
}

/** The connection this worker opened to one other worker. */
interface OutLink {
  socket: net.Socket | undefined;
  pending: Map<number, Pending>;
  /** Resolved when the link is up; replaced when it goes down. */
  up: Promise<void>;
  markUp: () => void;
}

export class LinkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LinkError';
  }
}

export function socketPath(dir: string, slot: number): string {
  return `${dir}/worker-${slot}.sock`;
}

export class PeerLinks {
  private readonly packr = new Packr({ useRecords: false, moreTypes: false });
  private readonly out = new Map<number, OutLink>();
  private server: net.Server | undefined;
  private readonly accepted = new Set<net.Socket>();
  private nextId = 1;
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly options: PeerLinksOptions,
    private readonly handler: LinkHandler,
  ) {
    for (let slot = 0; slot < options.processes; slot++) {
      if (slot === options.slot) continue;
      const link = { socket: undefined, pending: new Map(), up: Promise.resolve(), markUp: () => undefined } as OutLink;
      this.resetUp(link);
      this.out.set(slot, link);
    }
  }

  /** Listens for the other workers and starts connecting to each; does not wait for them. */
  async start(): Promise<void> {
    const path = socketPath(this.options.dir, this.options.slot);
    fs.rmSync(path, { force: true }); // left by a worker that was killed
    this.server = net.createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen({ path, exclusive: true }, () => resolve());
    });
    for (const slot of this.out.keys()) this.connect(slot);
  }

  /** Whether the link to `slot` is up now. */
  isUp(slot: number): boolean {
    return this.out.get(slot)?.socket !== undefined;
  }

  /** The workers whose links are up. */
  peersUp(): number[] {
    return [...this.out.keys()].filter((slot) => this.isUp(slot));
  }

  /** Resolves once `slot` handled the request; rejects if its link is down longer than `linkWaitMs` or drops meanwhile. */
  async request(slot: number, body: unknown): Promise<void> {
    const link = this.out.get(slot);
    if (!link) throw new LinkError(`no worker ${slot}`);
    if (!link.socket) await this.waitUp(link, slot);
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      link.pending.set(id, { resolve, reject });
      this.write(link.socket!, [REQUEST, id, body]);
    });
  }

  /**
   * Sends `body` to every worker whose link is up and resolves once each handled it. A worker
   * whose link drops meanwhile counts as done: it reads the store afresh when it starts again.
   */
  broadcast(body: unknown): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const slot of this.peersUp()) waits.push(this.request(slot, body).catch((e: Error) => {
      if (!(e instanceof LinkError)) throw e;
    }));
    return Promise.all(waits).then(() => undefined);
  }

  /** A one-way notice; dropped if the link is down (the receiver reads the store when it comes back). */
  notify(slot: number, body: unknown): void {
    const socket = this.out.get(slot)?.socket;
    if (socket) this.write(socket, [NOTICE, 0, body]);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    for (const [slot, link] of this.out) {
      link.socket?.destroy();
      this.failPending(link, slot);
    }
    for (const socket of this.accepted) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private resetUp(link: OutLink): void {
    link.up = new Promise<void>((resolve) => (link.markUp = resolve));
  }

  private waitUp(link: OutLink, slot: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        reject(new LinkError(`worker ${slot} unreachable for ${this.options.linkWaitMs} ms`));
      }, this.options.linkWaitMs);
      this.timers.add(timer);
      link.up.then(() => {
        clearTimeout(timer);
        this.timers.delete(timer);
        resolve();
      }, reject);
    });
  }

  private connect(slot: number): void {
    if (this.closed) return;
    const link = this.out.get(slot)!;
    const socket = net.connect(socketPath(this.options.dir, slot));
    socket.setNoDelay?.(true);
    let opened = false;
    socket.once('connect', () => {
      opened = true;
      this.write(socket, [HELLO, this.options.slot, null]);
      link.socket = socket;
      link.markUp();
      this.options.log.debug({ slot: this.options.slot, peer: slot }, 'link to worker up');
    });
    this.readFrames(socket, (frame) => this.onReply(link, frame));
    socket.on('error', () => undefined); // 'close' follows
    socket.once('close', () => {
      if (link.socket === socket) {
        link.socket = undefined;
        this.resetUp(link);
        this.failPending(link, slot);
      }
      if (this.closed) return;
      // Not up yet (the worker is starting) or gone (it is restarted): try again shortly.
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.connect(slot);
      }, opened ? 20 : 100);
      this.timers.add(timer);
    });
  }

  private failPending(link: OutLink, slot: number): void {
    const pending = [...link.pending.values()];
    link.pending.clear();
    for (const p of pending) p.reject(new LinkError(`link to worker ${slot} closed`));
  }

  private onReply(link: OutLink, frame: unknown[]): void {
    const [kind, id, body] = frame as [number, number, unknown];
    const pending = link.pending.get(id);
    if (!pending) return;
    link.pending.delete(id);
    if (kind === REPLY_OK) pending.resolve();
    else pending.reject(new Error(String(body)));
  }

  private accept(socket: net.Socket): void {
    this.accepted.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => this.accepted.delete(socket));
    let from = -1;
    this.readFrames(socket, (frame) => {
      const [kind, id, body] = frame as [number, number, unknown];
      if (kind === HELLO) {
        from = id;
        this.handler.joined(from);
        return;
      }
      if (kind === NOTICE) {
        this.handler.notice(from, body);
        return;
      }
      if (kind !== REQUEST) return;
      let answered: Promise<void> | void;
      try {
        answered = this.handler.request(from, body);
      } catch (e) {
        answered = Promise.reject(e);
      }
      Promise.resolve(answered).then(
        () => this.write(socket, [REPLY_OK, id, null]),
        (e: Error) => this.write(socket, [REPLY_ERROR, id, e.message]),
      );
    });
  }

  /** Splits the byte stream into frames; a frame over the limit closes the link (a bug, not input). */
  private readFrames(socket: net.Socket, onFrame: (frame: unknown[]) => void): void {
    let buffered: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      let offset = 0;
      while (buffered.length - offset >= 4) {
        const length = buffered.readUInt32BE(offset);
        if (length > this.options.maxFrameBytes) {
          this.options.log.error({ length }, 'oversized frame on a worker link: closing it');
          socket.destroy();
          return;
        }
        if (buffered.length - offset - 4 < length) break;
        const frame = this.packr.unpack(buffered.subarray(offset + 4, offset + 4 + length)) as unknown[];
        offset += 4 + length;
        if (!socket.destroyed) onFrame(frame);
      }
      buffered = offset === buffered.length ? Buffer.alloc(0) : buffered.subarray(offset);
    });
  }

  /** Frames written in one turn leave in one write. */
  private write(socket: net.Socket, frame: unknown[]): void {
    if (socket.destroyed) return;
    const body = this.packr.pack(frame);
    if (body.length > this.options.maxFrameBytes) throw new LinkError(`frame of ${body.length} bytes over the limit of ${this.options.maxFrameBytes}`);
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32BE(body.length, 0);
    if (!socket.writableCorked) {
      socket.cork();
      process.nextTick(() => socket.uncork());
    }
    socket.write(head);
    socket.write(body);
  }
}
