import fs from 'node:fs';
import { open, type Database, type RootDatabase, type RootDatabaseOptionsWithPath } from 'lmdb';
import type {
  DeliveryState,
  LoadedSession,
  LoadedState,
  Message,
  QueueEntryRecord,
  SessionRecord,
  Store,
  StoreListener,
  StoreOp,
} from './types';
import { StoreError } from './types';
import { EntryEncoder, type StoredQueueEntry, decodeEntry } from './entry-codec';

export type Durability = 'strict' | 'relaxed';

export interface LmdbStoreOptions {
  dataDir: string;
  /**
   * strict: a commit resolves once LMDB has fsynced it (survives power loss).
   * relaxed: a commit resolves once it is in the OS page cache (survives kill -9, not power loss).
   */
  durability: Durability;
  /**
   * Largest size of the stored data, bytes. Past it, commits that add messages (enqueue, retained,
   * QoS 2 records) are refused with StoreError 'full'; everything else, deletes included, goes on,
   * so the store drains. Checked after writes at most every 100 ms, so those may pass it.
   */
  mapSize: number;
  /**
   * Other processes write the same environment (several processes on one machine, src/machine/):
   * message ids are then allocated inside each write transaction, from what is stored, and
   * commits flush inside the write lock (no `overlappingSync`: see lmdbEnvOptions).
   */
  sharedByProcesses?: boolean;
}

/** How the store opens its LMDB environment (exported for the test that runs it in several processes). */
export function lmdbEnvOptions(options: Pick<LmdbStoreOptions, 'dataDir' | 'durability' | 'mapSize' | 'sharedByProcesses'>): RootDatabaseOptionsWithPath {
  return {
    path: `${options.dataDir}/broker.lmdb`,
    noSync: options.durability === 'relaxed',
    mapSize: options.mapSize,
    maxDbs: 12,
    // lmdb-js flushes a commit after letting go of the write lock by default (overlappingSync).
    // With several processes on one environment, a process opening it then undid another's last
    // commit after about one open in ten (test/machine/shared-lmdb.test.ts). With it off the
    // rarer loss of LMDB's own opening remains, which opening turns prevent
    // (src/machine/open-turns.ts). One process keeps the default.
    ...(options.sharedByProcesses ? { overlappingSync: false } : {}),
  };
}

type SeqKey = [string, number];

/** Commits waiting for the end of this event-loop turn, to be written in one transaction. */
interface PendingBatch {
  ops: StoreOp[];
  done: Promise<void>;
}
const MAX_SEQ = Number.MAX_SAFE_INTEGER;

/**
 * The embedded durable store: one LMDB environment under the data directory.
 * LMDB batches every commit issued in one event turn into one transaction (group commit),
 * so a burst of publishes costs one fsync.
 */
/** What one write transaction needs to know about its whole batch. */
export interface WriteBatch {
  /** How many sessions each message of the batch is queued for: one means inline. */
  queuedFor: Map<Message, number> | undefined;
}

export class LmdbStore<Batch extends WriteBatch = WriteBatch> implements Store {
  readonly kind: string = 'lmdb';
  readonly deliversThroughStore: boolean = false;
  protected readonly root: RootDatabase;
  protected readonly sessions: Database<SessionRecord, string>;
  /** Queue entries in the layout of entry-codec.ts: a message queued for one session inline, else by reference. */
  protected readonly queue: Database<Buffer, SeqKey>;
  protected readonly entries = new EntryEncoder();
  protected readonly messages: Database<Message, number>;
  protected readonly refCounts: Database<number, number>;
  protected readonly inbound: Database<number, SeqKey>;
  /** Deliveries past PUBREC, apart from their entries: marking one must not rewrite its payload. */
  protected readonly released: Database<DeliveryState, SeqKey>;
  protected readonly retained: Database<Message, string>;
  protected readonly messageIds = new WeakMap<Message, number>();
  protected nextMessageId = 1;
  protected closed = false;
  /** Set while the stored data is at or past `mapSize`; cleared below 90 % of it. */
  private full = false;
  private sizeCheckedAt = 0;
  /** The latest commit: an empty commit only has to wait for it. */
  protected last: Promise<void> = Promise.resolve();

  constructor(protected readonly options: LmdbStoreOptions) {
    fs.mkdirSync(options.dataDir, { recursive: true });
    this.root = open(lmdbEnvOptions(options));
    this.sessions = this.root.openDB({ name: 'sessions' });
    this.queue = this.root.openDB({ name: 'queue-entries', encoding: 'binary' });
    this.messages = this.root.openDB({ name: 'messages' });
    this.refCounts = this.root.openDB({ name: 'refcounts' });
    this.inbound = this.root.openDB({ name: 'inbound-qos2' });
    this.released = this.root.openDB({ name: 'delivery-states' });
    this.retained = this.root.openDB({ name: 'retained' });
    this.nextMessageId = this.lastMessageId() + 1;
    this.migrateMsgpackQueue();
    this.checkSize();
  }

  private lastMessageId(): number {
    for (const key of this.messages.getKeys({ reverse: true, limit: 1 })) return key;
    return 0;
  }

  /**
   * Data directories written before the binary entry layout keep their entries in `queue`, in
   * lmdb's default msgpack encoding: they move to `queue-entries` once, in one transaction.
   */
  private migrateMsgpackQueue(): void {
    const legacy = this.root.openDB<StoredQueueEntry, SeqKey>({ name: 'queue' });
    const rows = [...legacy.getRange()];
    if (rows.length === 0) return;
    this.root.transactionSync(() => {
      for (const { key, value } of rows) {
        void this.queue.put(key, this.entries.encode(value));
        void legacy.remove(key);
      }
    });
  }

  async load(_listener: StoreListener): Promise<LoadedState> {
    const sessions: LoadedSession[] = [];
    this.loadingMessages = new Map();
    for (const { value: record } of this.sessions.getRange()) sessions.push(this.loadSession(record));
    this.loadingMessages = undefined;
    return { sessions, retained: this.allRetained() };
  }

  protected allRetained(): Message[] {
    return [...this.retained.getRange()].map((e) => e.value);
  }

  /** A stored session with its queue and QoS 2 records; the references of its entries are tracked from now on. */
  protected loadSession(record: SessionRecord): LoadedSession {
    const queue: QueueEntryRecord[] = [];
    for (const { value: data } of this.queue.getRange({ start: [record.clientId, 0], end: [record.clientId, MAX_SEQ] })) {
      const entry = this.readEntry(record.clientId, data);
      if (entry) queue.push(entry);
    }
    const inboundQos2: number[] = [];
    for (const key of this.inbound.getKeys({ start: [record.clientId, 0], end: [record.clientId, 65536] })) {
      inboundQos2.push(key[1]);
    }
    return { record, queue, inboundQos2 };
  }

  /**
   * Decodes a stored queue entry and tracks its message reference and delivery state; undefined if
   * its message is gone. `fresh`: an entry stored since the session was loaded, with no delivery state.
   */
  protected readEntry(clientId: string, data: Buffer, fresh = false): QueueEntryRecord | undefined {
    const { messageId, message: inline, ...rest } = decodeEntry(data);
    const message = inline ?? (messageId !== undefined ? this.messageOf(messageId) : undefined);
    if (!message) return undefined; // dangling reference: the message was already released
    if (messageId !== undefined) this.referenced(clientId).set(rest.seq, messageId);
    if (fresh) return { ...rest, message }; // just stored: never past PUBREC yet
    const released = this.released.get([clientId, rest.seq]);
    if (released !== undefined) this.releasedSeqs(clientId).add(rest.seq);
    return { ...rest, message, state: released ?? rest.state };
  }

  /** A message stored by reference; while `load` runs, read once for all the entries that name it. */
  private messageOf(id: number): Message | undefined {
    let message = this.loadingMessages?.get(id);
    if (message) return message;
    message = this.messages.get(id);
    if (!message) return undefined;
    this.messageIds.set(message, id);
    this.loadingMessages?.set(id, message);
    return message;
  }

  private loadingMessages: Map<number, Message> | undefined;

  /** Every stored session was handed over by `load`: the only node holds them all. */
  async openSession(_clientId: string): Promise<LoadedSession | undefined> {
    return undefined;
  }

  /** One process: whatever was stored is already known here. */
  sync(): undefined {
    return undefined;
  }

  /**
   * Commits made in one turn of the event loop share one transaction (and, strict, one fsync):
   * each PUBLISH, PUBACK and PUBREL of a burst is its own commit, and one transaction per commit
   * cost more in allocation and GC than the writes themselves. The batch is atomic as a whole,
   * so each commit in it is, and commits keep their call order inside it.
   */
  commit(ops: StoreOp[]): Promise<void> {
    if (this.closed) return Promise.reject(new StoreError('closed', 'store is closed'));
    if (this.full) this.checkSize(); // deletes may have drained it since the last write checked
    if (this.full && ops.some(addsMessage)) {
      return Promise.reject(new StoreError('full', `the embedded store holds ${this.usedBytes()} bytes, its limit is ${this.options.mapSize} (lmdbMapSize)`));
    }
    if (ops.length === 0) return this.last;
    if (!this.pending) {
      const batch: PendingBatch = { ops: [], done: undefined as unknown as Promise<void> };
      batch.done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        if (this.pending === batch) this.pending = undefined;
        return this.write(batch.ops);
      });
      this.pending = batch;
      this.last = batch.done.catch(() => undefined);
    }
    for (const op of ops) this.pending.ops.push(op);
    return this.pending.done;
  }

  private pending: PendingBatch | undefined;

  protected async write(ops: StoreOp[]): Promise<void> {
    return this.writeBatch(ops, this.prepare(ops));
  }

  /** Write transactions in flight, and while another process opens the environment, the gate new ones wait at. */
  private writing = 0;
  private writesHeld: { released: Promise<void>; release: () => void } | undefined;
  /** Resolves when `writing` next drops to 0; shared by every `holdWrites` waiting for it. */
  private drain: { drained: Promise<void>; resolve: () => void } | undefined;

  /** Every write transaction goes through here, so that `holdWrites` can stop them. */
  protected async transact<T>(write: () => T): Promise<T> {
    while (this.writesHeld) await this.writesHeld.released;
    this.writing++;
    try {
      return await this.root.transaction(write);
    } finally {
      if (--this.writing === 0 && this.drain) {
        const { resolve } = this.drain;
        this.drain = undefined;
        resolve();
      }
    }
  }

  /**
   * Several processes (`sharedByProcesses`): another one is about to open the environment, and a
   * commit made meanwhile could be lost (src/machine/open-turns.ts). Resolves once no write
   * transaction of this process is in flight; new ones wait for `releaseWrites`.
   */
  async holdWrites(): Promise<void> {
    if (!this.writesHeld) {
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      this.writesHeld = { released, release };
    }
    if (this.writing === 0) return;
    if (!this.drain) {
      let resolve!: () => void;
      const drained = new Promise<void>((r) => (resolve = r));
      this.drain = { drained, resolve };
    }
    await this.drain.drained;
  }

  releaseWrites(): void {
    const held = this.writesHeld;
    this.writesHeld = undefined;
    held?.release();
  }

  /** A subclass whose Batch carries more overrides this. */
  protected prepare(ops: StoreOp[]): Batch {
    return { queuedFor: queuedCounts(ops) } as Batch;
  }

  protected async writeBatch(ops: StoreOp[], batch: Batch): Promise<void> {
    try {
      await this.transact(() => {
        if (this.options.sharedByProcesses) this.nextMessageId = this.lastMessageId() + 1;
        for (const op of ops) this.apply(op, batch);
        this.finishBatch(batch);
      });
      if (this.options.durability === 'strict') await this.root.flushed;
      this.checkSize();
    } catch (e) {
      this.rebuildReferences(); // the transaction's changes to them were rolled back
      throw new StoreError('unavailable', `LMDB commit failed: ${(e as Error).message}`);
    }
  }

  /** The pages the stored data occupies, in bytes (free pages that LMDB reuses are not counted). */
  usedBytes(): number {
    let pages = 0;
    let pageSize = 4096;
    for (const db of [this.root, this.sessions, this.queue, this.messages, this.refCounts, this.inbound, this.released, this.retained]) {
      const s = db.getStats() as { pageSize: number; treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number };
      pageSize = s.pageSize;
      pages += s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages;
    }
    return pages * pageSize;
  }

  /**
   * Reading the sizes costs about 50 µs, so at most every 100 ms: the limit may be passed by the
   * writes of that long.
   */
  private checkSize(): void {
    const now = Date.now();
    if (now - this.sizeCheckedAt < 100) return;
    this.sizeCheckedAt = now;
    const used = this.usedBytes();
    if (!this.full && used >= this.options.mapSize) this.full = true;
    else if (this.full && used < this.options.mapSize * 0.9) this.full = false;
  }

  private rebuildReferences(): void {
    this.byReference.clear();
    for (const { key, value } of this.queue.getRange()) {
      const messageId = decodeEntry(value).messageId;
      if (messageId !== undefined) this.referenced(key[0]).set(key[1], messageId);
    }
    this.withReleasedRow.clear();
    for (const key of this.released.getKeys()) this.releasedSeqs(key[0]).add(key[1]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.last;
    await this.root.flushed;
    await this.root.close();
  }

  /** Runs inside the write transaction after every op of the batch: what a subclass gathered over it is written here. */
  protected finishBatch(_batch: Batch): void {}

  /** Runs inside the write transaction: reads see this transaction's writes. */
  protected apply(op: StoreOp, batch: Batch): void {
    switch (op.op) {
      case 'putSession':
        void this.sessions.put(op.record.clientId, op.record);
        return;
      case 'deleteSession':
        this.deleteSession(op.clientId);
        return;
      case 'enqueue': {
        if (batch.queuedFor?.get(op.entry.message) === 1 && !this.messageIds.has(op.entry.message)) {
          void this.queue.put([op.clientId, op.entry.seq], this.entries.encode(op.entry)); // inline: the record as it is
          return;
        }
        const { message, ...rest } = op.entry;
        const messageId = this.retain(message);
        this.referenced(op.clientId).set(op.entry.seq, messageId);
        void this.queue.put([op.clientId, op.entry.seq], this.entries.encode({ ...rest, messageId }));
        return;
      }
      case 'setDeliveryState':
        void this.released.put([op.clientId, op.seq], op.state);
        this.releasedSeqs(op.clientId).add(op.seq);
        return;
      case 'dequeue':
        this.dequeue(op.clientId, op.seq);
        return;
      case 'putInboundQos2':
        void this.inbound.put([op.clientId, op.packetId], 1);
        return;
      case 'deleteInboundQos2':
        void this.inbound.remove([op.clientId, op.packetId]);
        return;
      case 'putRetained':
        void this.retained.put(op.message.topic, op.message);
        return;
      case 'publish': // only for stores that deliver through themselves
        return;
      case 'deleteRetained':
        void this.retained.remove(op.topic);
        return;
    }
  }

  /** Stores the message once and counts one more reference to it. */
  private retain(message: Message): number {
    let id = this.messageIds.get(message);
    if (id === undefined || this.messages.get(id) === undefined) {
      id = id ?? this.nextMessageId++;
      this.messageIds.set(message, id);
      void this.messages.put(id, message);
      void this.refCounts.put(id, 1);
      return id;
    }
    void this.refCounts.put(id, (this.refCounts.get(id) ?? 0) + 1);
    return id;
  }

  private release(messageId: number): void {
    const count = (this.refCounts.get(messageId) ?? 1) - 1;
    if (count > 0) {
      void this.refCounts.put(messageId, count);
    } else {
      void this.refCounts.remove(messageId);
      void this.messages.remove(messageId);
    }
  }

  /** An inline entry is removed without reading it: only referenced ones are tracked here. */
  protected dequeue(clientId: string, seq: number): void {
    void this.queue.remove([clientId, seq]);
    const released = this.withReleasedRow.get(clientId);
    if (released?.delete(seq)) {
      void this.released.remove([clientId, seq]);
      if (released.size === 0) this.withReleasedRow.delete(clientId);
    }
    const references = this.byReference.get(clientId);
    const messageId = references?.get(seq);
    if (messageId === undefined) return;
    references!.delete(seq);
    if (references!.size === 0) this.byReference.delete(clientId);
    this.release(messageId);
  }

  /**
   * The sequences with a `delivery-states` row, by session: a dequeue removes that row only when
   * there is one (QoS 2 past PUBREC), instead of a lookup per acknowledged delivery.
   */
  private readonly withReleasedRow = new Map<string, Set<number>>();
  protected releasedSeqs(clientId: string): Set<number> {
    let seqs = this.withReleasedRow.get(clientId);
    if (!seqs) this.withReleasedRow.set(clientId, (seqs = new Set()));
    return seqs;
  }

  /** Queue entries that reference a shared message, by session and sequence: a dequeue must release it. */
  private readonly byReference = new Map<string, Map<number, number>>();
  protected referenced(clientId: string): Map<number, number> {
    let references = this.byReference.get(clientId);
    if (!references) this.byReference.set(clientId, (references = new Map()));
    return references;
  }

  /** Drops what is tracked in memory about a session's entries (another process holds it now). */
  protected forgetReferences(clientId: string): void {
    this.byReference.delete(clientId);
    this.withReleasedRow.delete(clientId);
  }

  private deleteSession(clientId: string): void {
    for (const key of [...this.queue.getKeys({ start: [clientId, 0], end: [clientId, MAX_SEQ] })]) this.dequeue(clientId, key[1]);
    for (const key of [...this.inbound.getKeys({ start: [clientId, 0], end: [clientId, 65536] })]) {
      void this.inbound.remove(key);
    }
    void this.sessions.remove(clientId);
  }
}

/** Ops that store message data: refused while the store is full. The rest keep it usable and let it drain. */
function addsMessage(op: StoreOp): boolean {
  return op.op === 'enqueue' || op.op === 'putRetained' || op.op === 'putInboundQos2' || op.op === 'publish';
}

function queuedCounts(ops: StoreOp[]): Map<Message, number> | undefined {
  let queuedFor: Map<Message, number> | undefined;
  for (const op of ops) {
    if (op.op !== 'enqueue') continue;
    queuedFor ??= new Map();
    queuedFor.set(op.entry.message, (queuedFor.get(op.entry.message) ?? 0) + 1);
  }
  return queuedFor;
}
