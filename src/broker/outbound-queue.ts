import type { QueueEntryRecord } from '../store/types';
import type { Session } from './session';

/** A delivery on its way to one session. */
export interface OutboundEntry extends QueueEntryRecord {
  packetId: number;
  /** The session whose queue holds it. */
  session: Session;
  /** False until the store has committed the publish that made this entry. */
  ready: boolean;
  /** A PUBLISH for it went out (or may have, before a restart): re-sends carry DUP=1. */
  sent: boolean;
  done: boolean;
  bytes: number;
  /** Cluster mode: the delivery has a position in the store (its inbox), which must hear when it is done. */
  fromStore: boolean;
}


/**
 * The per-session outbound queue, in delivery-sequence order.
 * Entries before `cursor` have been sent; the sent-and-unfinished ones are `inflight`.
 */
export class OutboundQueue {
  /** Slots before `head` are finished and emptied (undefined); from `head` on every slot holds an entry. */
  private entries: (OutboundEntry | undefined)[] = [];
  private head = 0;
  private cursor = 0;
  /** Sent and unfinished QoS 1/2 deliveries by packet id; made on first use (an idle connection has none). */
  private inflightById: Map<number, OutboundEntry> | undefined;
  /** Entries not yet sent, and their payload bytes: the "offline queue" that limits bound. */
  pendingCount = 0;
  pendingBytes = 0;

  get inflightCount(): number {
    return this.inflightById?.size ?? 0;
  }

  inflightEntry(packetId: number): OutboundEntry | undefined {
    return this.inflightById?.get(packetId);
  }

  private get inflight(): Map<number, OutboundEntry> {
    return (this.inflightById ??= new Map());
  }

  get length(): number {
    return this.entries.length - this.head;
  }

  push(entry: OutboundEntry): void {
    this.entries.push(entry);
    if (entry.sent) {
      // Only entries restored after a restart arrive already sent; they form a prefix.
      this.cursor = this.entries.length;
      if (entry.qos > 0) this.inflight.set(entry.packetId, entry);
    } else {
      this.pendingCount++;
      this.pendingBytes += entry.bytes;
    }
  }

  /** The next entry to send, if it is ready: order never skips an entry still being committed. */
  peekUnsent(): OutboundEntry | undefined {
    while (this.cursor < this.entries.length && this.entries[this.cursor]!.done) this.cursor++;
    const entry = this.entries[this.cursor];
    return entry && entry.ready ? entry : undefined;
  }

  markSent(entry: OutboundEntry): void {
    entry.sent = true;
    this.cursor++;
    this.pendingCount--;
    this.pendingBytes -= entry.bytes;
    if (entry.qos > 0) this.inflight.set(entry.packetId, entry);
    else this.finish(entry);
  }

  /** Marks an entry finished (acked, dropped or moved) and releases its place. */
  finish(entry: OutboundEntry): void {
    if (entry.done) return;
    entry.done = true;
    if (!entry.sent) {
      this.pendingCount--;
      this.pendingBytes -= entry.bytes;
    } else if (entry.qos > 0) {
      this.inflightById?.delete(entry.packetId);
    }
    this.compact();
  }

  /** The oldest entry not yet sent: the one the drop-oldest policy removes. */
  oldestUnsent(): OutboundEntry | undefined {
    for (let i = this.cursor; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (!e.done && !e.sent) return e;
    }
    return undefined;
  }

  /** Sent, unfinished entries in sequence order: what a reconnect re-sends. */
  sentUnfinished(): OutboundEntry[] {
    return this.inflightById ? [...this.inflightById.values()].sort((a, b) => a.seq - b.seq) : [];
  }

  unfinished(): OutboundEntry[] {
    return this.entries.slice(this.head).filter((e): e is OutboundEntry => !e!.done);
  }

  private compact(): void {
    // A finished entry's slot lets go of it at once: held until the 1024-entry slice, entries and
    // their messages outlived young-generation GCs and were promoted, and the old-space collections
    // they caused were the p99 tail of a session receiving a steady 100 msg/s.
    while (this.head < this.entries.length && this.entries[this.head]!.done) this.entries[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.cursor -= this.head;
      this.head = 0;
    }
    if (this.cursor < this.head) this.cursor = this.head;
  }
}
