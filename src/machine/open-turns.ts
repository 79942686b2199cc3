import type { Logger } from '../broker/options';

/** A worker process as the primary sees it (node:cluster's Worker is one). */
export interface TurnTaker {
  send(message: unknown): unknown;
  isConnected(): boolean;
  readonly process: { readonly pid?: number };
}

/**
 * Opening the shared LMDB environment one worker at a time, while the others hold their writes.
 *
 * LMDB as lmdb-js 3.5.6 bundles it sets the environment's last transaction id, in the shared
 * lock file, from the meta page a process read while opening (mdb_env_open2; OpenLDAP ITS#9496,
 * fixed upstream in LMDB 0.9.29, still present in lmdb-js's copy). A commit by another process
 * between that read and that write is lost: the next write transaction starts from the meta page
 * before it. So a worker that starts (or starts again after a crash) asks the primary for its turn;
 * the primary has every other worker finish the write transactions it has in flight and start no
 * new one, lets the worker open, and lets the others write again once it has (docs/multi-process.md).
 */

const TURN = 'iotb:open-turn';
const OPEN_NOW = 'iotb:open-now';
const OPENED = 'iotb:opened';
const HOLD = 'iotb:hold-writes';
const HELD = 'iotb:writes-held';
const RELEASE = 'iotb:release-writes';

/** How long the primary waits for a worker to hold its writes before letting the opener go on anyway. */
const HOLD_WAIT_MS = 5000;

interface TurnMessage {
  type: typeof TURN | typeof OPEN_NOW | typeof OPENED | typeof HOLD | typeof HELD | typeof RELEASE;
  id?: number;
}

const TYPES: ReadonlySet<string> = new Set([TURN, OPEN_NOW, OPENED, HOLD, HELD, RELEASE]);

function isTurnMessage(m: unknown): m is TurnMessage {
  return typeof m === 'object' && m !== null && TYPES.has((m as TurnMessage).type);
}

// ---- in a worker ------------------------------------------------------------------------

/** Resolves when the primary lets this worker open the environment; call `opened` right after. */
export function openTurn(): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = (m: unknown): void => {
      if (!isTurnMessage(m) || m.type !== OPEN_NOW) return;
      process.off('message', onMessage);
      resolve();
    };
    process.on('message', onMessage);
    process.send?.({ type: TURN } satisfies TurnMessage);
  });
}

/**
 * This worker has opened the environment. From now on it holds its writes while another one opens:
 * `hold` resolves once none of its write transactions is in flight, `release` lets them go on.
 */
export function opened(store: { holdWrites(): Promise<void>; releaseWrites(): void }): void {
  process.on('message', (m: unknown) => {
    if (!isTurnMessage(m)) return;
    if (m.type === HOLD) {
      void store.holdWrites().then(() => process.send?.({ type: HELD, id: m.id } satisfies TurnMessage));
    } else if (m.type === RELEASE) {
      store.releaseWrites();
    }
  });
  process.send?.({ type: OPENED } satisfies TurnMessage);
}

// ---- in the primary ---------------------------------------------------------------------

/** The primary's side: one opener at a time, the other open workers' writes held meanwhile. */
export class OpenTurns {
  private readonly waiting: TurnTaker[] = [];
  private opener: TurnTaker | undefined;
  /** Workers that have opened the environment: they hold their writes while another opens. */
  private readonly open = new Set<TurnTaker>();
  private readonly holding = new Set<TurnTaker>();
  private round = 0;
  private pending: { round: number; left: Set<TurnTaker>; timer: NodeJS.Timeout } | undefined;

  constructor(private readonly log: Logger) {}

  /** A message from a worker; false when it is not about opening turns. */
  onMessage(worker: TurnTaker, message: unknown): boolean {
    if (!isTurnMessage(message)) return false;
    switch (message.type) {
      case TURN:
        this.waiting.push(worker);
        this.next();
        break;
      case OPENED:
        // Open first: the next opener's turn, which finish() may start, must hold its writes too.
        this.open.add(worker);
        if (worker === this.opener) this.finish();
        break;
      case HELD: {
        const pending = this.pending;
        if (pending && pending.round === message.id) {
          pending.left.delete(worker);
          if (pending.left.size === 0) this.grant();
        }
        break;
      }
    }
    return true;
  }

  /** A worker exited: it neither opens nor holds writes any more. */
  onExit(worker: TurnTaker): void {
    this.open.delete(worker);
    this.holding.delete(worker);
    const queued = this.waiting.indexOf(worker);
    if (queued >= 0) this.waiting.splice(queued, 1);
    const pending = this.pending;
    if (pending?.left.delete(worker) && pending.left.size === 0) this.grant();
    if (worker === this.opener) this.finish();
  }

  private next(): void {
    if (this.opener || this.waiting.length === 0) return;
    this.opener = this.waiting.shift()!;
    const others = [...this.open].filter((w) => w !== this.opener && w.isConnected());
    if (others.length === 0) return this.grant();
    const round = ++this.round;
    const timer = setTimeout(() => {
      if (this.pending?.round !== round) return;
      this.log.warn({ workers: [...this.pending.left].map((w) => w.process.pid) }, `workers did not hold their writes within ${HOLD_WAIT_MS} ms: a worker opens the store anyway`);
      this.grant();
    }, HOLD_WAIT_MS).unref();
    this.pending = { round, left: new Set(others), timer };
    for (const w of others) {
      this.holding.add(w);
      w.send({ type: HOLD, id: round } satisfies TurnMessage);
    }
  }

  private grant(): void {
    if (this.pending) clearTimeout(this.pending.timer);
    this.pending = undefined;
    if (this.opener?.isConnected()) this.opener.send({ type: OPEN_NOW } satisfies TurnMessage);
    else this.finish();
  }

  private finish(): void {
    if (this.pending) clearTimeout(this.pending.timer);
    this.pending = undefined;
    this.opener = undefined;
    for (const w of this.holding) if (w.isConnected()) w.send({ type: RELEASE } satisfies TurnMessage);
    this.holding.clear();
    this.next();
  }
}
