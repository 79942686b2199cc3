import type { LoadedSession, LoadedState, Message, QueueEntryRecord, SessionRecord, Store, StoreListener, StoreOp } from './types';
import { StoreError } from './types';

interface MemorySession {
  record: SessionRecord;
  queue: Map<number, QueueEntryRecord>;
  inboundQos2: Set<number>;
}

/**
 * Keeps durable state in process memory: nothing survives the process.
 * Used for tests of the broker core and for `--store memory`.
 * `load` returns what was committed, so a test can "restart" a broker on the same instance.
 */
export class MemoryStore implements Store {
  readonly kind = 'memory';
  readonly deliversThroughStore = false;
  private readonly sessions = new Map<string, MemorySession>();
  private readonly retained = new Map<string, Message>();
  private last: Promise<void> = Promise.resolve();
  private closed = false;

  async load(_listener: StoreListener): Promise<LoadedState> {
    const sessions: LoadedSession[] = [...this.sessions.values()].map((s) => ({
      record: structuredCloneRecord(s.record),
      queue: [...s.queue.values()].sort((a, b) => a.seq - b.seq).map((e) => ({ ...e })),
      inboundQos2: [...s.inboundQos2],
    }));
    return { sessions, retained: [...this.retained.values()] };
  }

  /** Every stored session was handed over by `load`: the only node holds them all. */
  async openSession(_clientId: string): Promise<LoadedSession | undefined> {
    return undefined;
  }

  /** One process: whatever was stored is already known here. */
  sync(): undefined {
    return undefined;
  }

  commit(ops: StoreOp[]): Promise<void> {
    if (this.closed) return Promise.reject(new StoreError('closed', 'store is closed'));
    for (const op of ops) this.apply(op);
    // Resolve on a later tick, like a real store, and in call order.
    this.last = this.last.then(() => new Promise<void>((resolve) => setImmediate(resolve)));
    return this.last;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.last;
  }

  private session(clientId: string): MemorySession | undefined {
    return this.sessions.get(clientId);
  }

  private apply(op: StoreOp): void {
    switch (op.op) {
      case 'putSession': {
        const existing = this.sessions.get(op.record.clientId);
        const record = structuredCloneRecord(op.record);
        if (existing) existing.record = record;
        else this.sessions.set(op.record.clientId, { record, queue: new Map(), inboundQos2: new Set() });
        return;
      }
      case 'deleteSession':
        this.sessions.delete(op.clientId);
        return;
      case 'enqueue':
        this.session(op.clientId)?.queue.set(op.entry.seq, { ...op.entry });
        return;
      case 'setDeliveryState': {
        const entry = this.session(op.clientId)?.queue.get(op.seq);
        if (entry) entry.state = op.state;
        return;
      }
      case 'dequeue':
        this.session(op.clientId)?.queue.delete(op.seq);
        return;
      case 'putInboundQos2':
        this.session(op.clientId)?.inboundQos2.add(op.packetId);
        return;
      case 'deleteInboundQos2':
        this.session(op.clientId)?.inboundQos2.delete(op.packetId);
        return;
      case 'putRetained':
        this.retained.set(op.message.topic, op.message);
        return;
      case 'publish': // only for stores that deliver through themselves
        return;
      case 'deleteRetained':
        this.retained.delete(op.topic);
        return;
    }
  }
}

function structuredCloneRecord(record: SessionRecord): SessionRecord {
  return { ...record, subscriptions: record.subscriptions.map((s) => ({ ...s })) };
}
