import type { LoadedSession, LoadedState, Store, StoreListener, StoreOp } from '../../src/store/types';
import { StoreError } from '../../src/store/types';

/** A store that passes everything but commits to a real one; the test stores below change commits only. */
abstract class WrappedStore implements Store {
  abstract readonly kind: string;

  constructor(readonly inner: Store) {}

  get deliversThroughStore(): boolean {
    return this.inner.deliversThroughStore;
  }

  load(listener: StoreListener): Promise<LoadedState> {
    return this.inner.load(listener);
  }

  openSession(clientId: string): Promise<LoadedSession | undefined> {
    return this.inner.openSession(clientId);
  }

  sync(): Promise<void> | undefined {
    return this.inner.sync();
  }

  abstract commit(ops: StoreOp[]): Promise<void>;

  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * Fault injection around a real store (MemoryStore or LmdbStore): the only stand-in for the
 * store in these tests. `failNext` commits that match `failWhen` reject with
 * StoreError('unavailable'), as a store that is down would; everything else goes to the real store.
 */
export class FaultyStore extends WrappedStore {
  readonly kind = 'faulty';
  failNext = 0;
  failWhen: (ops: StoreOp[]) => boolean = (ops) => ops.length > 0;
  injected = 0;

  commit(ops: StoreOp[]): Promise<void> {
    if (this.failNext > 0 && this.failWhen(ops)) {
      this.failNext--;
      this.injected++;
      return Promise.reject(new StoreError('unavailable', 'injected store failure'));
    }
    return this.inner.commit(ops);
  }
}

/**
 * A real store whose commits can be held back: while the gate is closed, each commit is
 * applied only when the test opens the gate, in call order (as the Store contract requires).
 * It lets a test observe what the broker does between "commit issued" and "commit durable".
 *
 * `hold(match)` holds only the commits `match` selects and lets the others through: that
 * models a store whose commits for different sessions complete independently, as the
 * cluster store's do (one RocketMQ SEND each), which the embedded stores never show.
 */
export class GatedStore extends WrappedStore {
  readonly kind = 'gated';
  private closedGate = false;
  private holdMatch: ((ops: StoreOp[]) => boolean) | undefined;
  private held: { ops: StoreOp[]; resolve: () => void; reject: (e: unknown) => void }[] = [];
  readonly committed: StoreOp[][] = [];

  /** Commits issued while held and not applied yet. */
  get pending(): StoreOp[][] {
    return this.held.map((h) => h.ops);
  }

  hold(match?: (ops: StoreOp[]) => boolean): void {
    this.closedGate = true;
    this.holdMatch = match;
  }

  /** Fails every held commit, as a store that went down would; the gate opens. */
  fail(): void {
    this.closedGate = false;
    for (const h of this.held.splice(0)) h.reject(new StoreError('unavailable', 'injected store failure'));
  }

  /** Opens the gate: applies every held commit in order. */
  release(): void {
    this.closedGate = false;
    for (const h of this.held.splice(0)) this.forward(h.ops).then(h.resolve, h.reject);
  }

  commit(ops: StoreOp[]): Promise<void> {
    if (!this.closedGate || (this.holdMatch && !this.holdMatch(ops))) return this.forward(ops);
    return new Promise((resolve, reject) => this.held.push({ ops, resolve, reject }));
  }

  override close(): Promise<void> {
    this.release();
    return super.close();
  }

  private forward(ops: StoreOp[]): Promise<void> {
    if (ops.length > 0) this.committed.push(ops);
    return this.inner.commit(ops);
  }
}
