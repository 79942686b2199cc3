// The session log (docs/cluster.md §4): what a session is, as a fold of its records in log order.
// Pure: records in, state out. The cluster store writes and reads the records; this decides
// which of them count, which is how two nodes never both write one session.
import type { SessionRecord } from '../store/types';

/** Per inbox instance (one per RocketMQ broker): which positions are done, which past PUBREC. */
export interface InboxPositions {
  /** Every offset below is done. */
  floor: number;
  /** Done offsets at or above the floor (acknowledged out of order). */
  done: number[];
  /** Offsets whose PUBREC was received: only PUBREL is sent for them again. */
  pubrec: number[];
}

export interface SessionState {
  /** The session, or null while there is none (never created, or ended). */
  record: SessionRecord | null;
  /** The inbox incarnation of the session: a new session starts with a new, empty inbox. */
  incarnation: string;
  /** By broker name. */
  inbox: Record<string, InboxPositions>;
  /** QoS 2 packet ids received from the client and not yet released. */
  inboundQos2: number[];
}

export type Change =
  | { k: 'record'; record: SessionRecord | null; incarnation: string }
  | { k: 'done'; broker: string; offset: number }
  | { k: 'pubrec'; broker: string; offset: number }
  | { k: 'received'; packetId: number }
  | { k: 'released'; packetId: number };

/** The records of a session log. `e` is the writer's epoch. */
export type LogRecord =
  | { t: 'claim'; node: string; nonce: string }
  | { t: 'snapshot'; e: number; node: string; state: SessionState; clientId?: string }
  | { t: 'change'; e: number; c: Change[] }
  /** Changes of several sessions in one SEND, dispatched to all their logs: each takes its part. */
  | { t: 'batch'; parts: { clientId: string; e: number; c: Change[] }[] }
  | { t: 'handoff'; e: number; node?: string; clientId?: string };

export function emptyState(): SessionState {
  return { record: null, incarnation: '', inbox: {}, inboundQos2: [] };
}

/**
 * Folds a session log. Rules (docs/cluster.md §4):
 * - a claim's epoch is its ordinal among the claims;
 * - a snapshot of epoch e is valid only if no later claim precedes it; it replaces the state and
 *   makes e the active epoch;
 * - any other record counts only if it carries the active epoch and the active owner has not
 *   handed off yet. Everything else is the write of a fenced owner, and ignored.
 */
export class SessionLogFold {
  /**
   * `clientId`: the session whose log this is: it takes its own part of a batch record.
   * `partial`: the fold starts after the log's beginning (RocketMQ's retention deleted it), so
   * the claims before its start are unknown. A snapshot whose epoch is above the claims counted
   * then means claims were missed: the fold takes its epoch as the count from there on (a
   * partial fold is anchored by its snapshots; the owner renews one well within the retention).
   */
  constructor(
    readonly clientId: string,
    private readonly partial = false,
  ) {}

  /** Epoch of the latest claim seen. */
  claims = 0;
  /** Epoch whose owner may write (its snapshot is the latest valid one); 0: never owned. */
  active = 0;
  activeNode = '';
  handedOff = false;
  state: SessionState = emptyState();
  private readonly nonces = new Map<string, { epoch: number; node: string }>();

  /** Starts from a snapshot found by the hint (its validity was checked when it was written). */
  static fromSnapshot(clientId: string, record: Extract<LogRecord, { t: 'snapshot' }>): SessionLogFold {
    const fold = new SessionLogFold(clientId);
    fold.claims = record.e;
    fold.apply(record);
    return fold;
  }

  epochOf(nonce: string): number | undefined {
    return this.nonces.get(nonce)?.epoch;
  }

  /** True when the owner of `epoch` may write now: its snapshot is the active one and it has not let go. */
  owns(epoch: number): boolean {
    return this.active === epoch && !this.handedOff;
  }

  apply(record: LogRecord): void {
    switch (record.t) {
      case 'claim':
        this.claims++;
        this.nonces.set(record.nonce, { epoch: this.claims, node: record.node });
        return;
      case 'snapshot':
        if (this.partial && record.e > this.claims) {
          this.claims = record.e;
          this.nonces.clear(); // their ordinals were counted from an unknown start
        }
        if (record.e !== this.claims) return; // a later claim came first: the writer lost the race
        this.active = record.e;
        this.activeNode = record.node;
        this.handedOff = false;
        this.state = structuredClone(record.state);
        return;
      case 'handoff':
        if (record.e === this.active) this.handedOff = true;
        return;
      case 'change':
        if (!this.owns(record.e)) return;
        for (const change of record.c) applyChange(this.state, change);
        return;
      case 'batch':
        for (const part of record.parts) {
          if (part.clientId === this.clientId) this.apply({ t: 'change', e: part.e, c: part.c });
        }
        return;
    }
  }

  /** A QoS 2 PUBLISH stored with its "received" record (the data message dispatched to the log). */
  applyReceived(epoch: number, packetId: number): void {
    if (this.owns(epoch)) applyChange(this.state, { k: 'received', packetId });
  }
}

export function applyChange(state: SessionState, change: Change): void {
  switch (change.k) {
    case 'record':
      if (change.incarnation !== state.incarnation) state.inbox = {}; // a new inbox starts empty
      state.record = change.record;
      state.incarnation = change.incarnation;
      if (change.record === null) state.inboundQos2 = [];
      return;
    case 'done': {
      const positions = (state.inbox[change.broker] ??= { floor: 0, done: [], pubrec: [] });
      if (change.offset < positions.floor) return;
      const done = new Set(positions.done);
      done.add(change.offset);
      while (done.delete(positions.floor)) positions.floor++;
      positions.done = [...done].sort((a, b) => a - b);
      positions.pubrec = positions.pubrec.filter((o) => o >= positions.floor && !done.has(o));
      return;
    }
    case 'pubrec': {
      const positions = (state.inbox[change.broker] ??= { floor: 0, done: [], pubrec: [] });
      if (change.offset >= positions.floor && !positions.pubrec.includes(change.offset)) positions.pubrec.push(change.offset);
      return;
    }
    case 'received':
      if (!state.inboundQos2.includes(change.packetId)) state.inboundQos2.push(change.packetId);
      return;
    case 'released':
      state.inboundQos2 = state.inboundQos2.filter((id) => id !== change.packetId);
      return;
  }
}

/**
 * Which sessions a node holds, from its node log: the snapshots that made it an owner (also
 * dispatched there) and the handoffs that ended that. A session listed may have moved on since
 * (a later claim elsewhere); the session log has the last word. Applies one record to `held`
 * (client id → node key).
 */
export function trackHeld(held: Map<string, string>, record: LogRecord): void {
  if (record.t === 'snapshot' && record.clientId !== undefined) held.set(record.clientId, record.node);
  else if (record.t === 'handoff' && record.clientId !== undefined && held.get(record.clientId) === record.node) held.delete(record.clientId);
}

// ---- encoding: JSON, with Buffers (will payloads, correlation data) as base64 ----------------

export function encodeRecord(record: LogRecord): Buffer {
  return Buffer.from(JSON.stringify(record, (_key, value: unknown) => (isBufferJson(value) ? { $b64: Buffer.from(value.data).toString('base64') } : value)));
}

export function decodeRecord(body: Buffer): LogRecord | undefined {
  try {
    const record = JSON.parse(body.toString('utf8'), (_key, value: unknown) =>
      value !== null && typeof value === 'object' && typeof (value as { $b64?: unknown }).$b64 === 'string'
        ? Buffer.from((value as { $b64: string }).$b64, 'base64')
        : value,
    ) as LogRecord;
    return typeof record === 'object' && record !== null && typeof record.t === 'string' ? record : undefined;
  } catch {
    return undefined;
  }
}

function isBufferJson(value: unknown): value is { type: 'Buffer'; data: number[] } {
  return value !== null && typeof value === 'object' && (value as { type?: unknown }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data);
}
