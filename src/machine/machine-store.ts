import type { Database } from 'lmdb';
import type { Logger } from '../broker/options';
import { type DeliveryTarget, deliveryTarget, packetIdOf } from '../store/delivery';
import { LmdbStore, type LmdbStoreOptions, type WriteBatch } from '../store/lmdb-store';
import type { LoadedSession, LoadedState, Message, SessionRecord, StoreListener, StoreOp, StoredDelivery, StoredSubscription } from '../store/types';
import { StoreError } from '../store/types';
import { LinkError, PeerLinks } from './links';

/**
 * The store of one worker process when several share the machine (docs/multi-process.md): one
 * LMDB environment written by all of them, and links between them.
 *
 * - Each session is held by one worker (LMDB `holders`: slot and epoch; absent: the slot its
 *   client id hashes to). A CONNECT on another worker claims it: epoch + 1, then every worker
 *   hears of it, and the old holder lets it go (its later writes are dropped: fencing) before the
 *   claim returns.
 * - A PUBLISH is stored by the worker that received it, in its own transaction, for every
 *   persistent recipient wherever that is held: queue entries at sequence numbers taken from the
 *   session's counter (LMDB `queue-seqs`), so a QoS 2 "received" record and every delivery commit
 *   together. Then each holder is woken and reads what is new past its cursor. Clean sessions
 *   and QoS 0 deliveries are not stored: the message itself goes to the holder on the link.
 * - Every worker routes to every session: it knows each session's record, and hears (and waits
 *   to be heard, before a SUBACK) when one changes. Retained messages likewise.
 */
export interface MachineStoreOptions extends LmdbStoreOptions {
  /** This worker's number, 0 .. processes - 1. */
  slot: number;
  processes: number;
  /** How long a claim waits for a worker whose link is down to come back. */
  linkWaitMs: number;
  maxFrameBytes: number;
  log: Logger;
}

interface Holder {
  slot: number;
  epoch: number;
}

/** A session this worker holds. */
interface HeldSession {
  clientId: string;
  epoch: number;
  persistent: boolean;
  /** The highest queue sequence read from the store: what is past it is new. */
  cursor: number;
  /** Sequences of deliveries that are not stored: upwards for clean sessions, downwards (below 0) for persistent ones. */
  unstoredSeq: number;
}

/** A message of this batch and who gets it: stored recipients (with their delivery) and the others. */
interface PublishPlan {
  message: Message;
  /** The publishing core's matches, for deliveries made in this worker. */
  targets: ReadonlyMap<string, DeliveryTarget> | undefined;
  /** `seq`: the sequence its entry got in the transaction; absent if the session had ended by then. */
  stored: { clientId: string; target: DeliveryTarget; seq?: number }[];
  unstored: string[];
}

/**
 * One step for a holder, in the order the messages were published: read a session's stored
 * entries up to `seq`, or deliver a message that is not stored.
 */
type Delivery = readonly ['stored', string, number] | readonly ['unstored', Message, string[]];

/**
 * A delivery on a link: a message as a flat array, not an object with named fields, which
 * halves msgpack's encoding and decoding time (measured: 2.5 µs → 1.05 µs an item, pack and unpack).
 */
type WireDelivery =
  | [0, string, number]
  | [1, string[], string, Buffer, Message['qos'], boolean, string, number, number | null, Message['properties'] | null, boolean | null];

function toWire(item: Delivery): WireDelivery {
  if (item[0] === 'stored') return [0, item[1], item[2]];
  const [, m, ids] = item;
  return [1, ids, m.topic, m.payload, m.qos, m.retain, m.publisherId, m.createdAt, m.expiresAt ?? null, m.properties ?? null, m.movedFromMember ?? null];
}

function fromWire(item: WireDelivery): Delivery {
  if (item[0] === 0) return ['stored', item[1], item[2]];
  const [, ids, topic, payload, qos, retain, publisherId, createdAt, expiresAt, properties, moved] = item;
  const message: Message = { topic, payload, qos, retain, publisherId, createdAt };
  if (expiresAt !== null) message.expiresAt = expiresAt;
  if (properties !== null) message.properties = properties;
  if (moved !== null) message.movedFromMember = moved;
  return ['unstored', message, ids];
}

/** A write batch with what `apply` gathers for after the commit. */
interface MachineBatch extends WriteBatch {
  plans: Map<Message, PublishPlan>;
  /** Sessions whose record the batch changed, and retained topics it changed. */
  sessions: Set<string>;
  /** Sessions the batch deletes for good (no putSession after the deleteSession): no longer held here after it. */
  ended: Set<string>;
  retained: Set<string>;
  /**
   * The last queue sequence each session took in this batch. Its counter in LMDB is read once and
   * written once per batch (finishBatch), not per entry: a session gets many entries in a batch.
   */
  counters: Map<string, number>;
}

type LinkBody =
  | { k: 'claim'; id: string; epoch: number }
  | { k: 'routes'; ids: string[] }
  | { k: 'retained'; topics: string[] }
  /** Deliveries in the wire form of `toWire`. */
  | { k: 'deliver'; items: WireDelivery[] };

/** FNV-1a: the worker a session belongs to while no claim recorded another. */
function hashSlot(clientId: string, processes: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < clientId.length; i++) h = Math.imul(h ^ clientId.charCodeAt(i), 0x01000193);
  return (h >>> 0) % processes;
}

const MAX_SEQ = Number.MAX_SAFE_INTEGER;

export class MachineStore extends LmdbStore<MachineBatch> {
  override readonly kind = 'lmdb-shared';
  override readonly deliversThroughStore = true;
  readonly queuesHeldCleanSessions = true;
  readonly storesRetainedDeliveries = true;
  private readonly holders: Database<Holder, string>;
  private readonly seqs: Database<number, string>;
  private readonly links: PeerLinks;
  private listener: StoreListener | undefined;
  /** Every session's record on the machine, as last stored: the routes and who is persistent. */
  private readonly known = new Map<string, SessionRecord>();
  /** Who holds each session, as far as this worker heard. */
  private readonly holderOf = new Map<string, Holder>();
  private readonly held = new Map<string, HeldSession>();
  /** Frames that arrived before `load` finished, handled right after it. */
  private early: (() => void)[] | undefined = [];

  constructor(private readonly machine: MachineStoreOptions) {
    super({ ...machine, sharedByProcesses: true });
    this.holders = this.root.openDB({ name: 'holders' });
    this.seqs = this.root.openDB({ name: 'queue-seqs' });
    this.links = new PeerLinks(
      { dir: machine.dataDir, slot: machine.slot, processes: machine.processes, maxFrameBytes: machine.maxFrameBytes, linkWaitMs: machine.linkWaitMs, log: machine.log },
      {
        request: (from, body) => this.whenLoaded(() => this.onRequest(from, body as LinkBody)),
        notice: (_from, body) => void this.whenLoaded(() => this.onNotice(body as LinkBody)),
        joined: () => void this.whenLoaded(() => setImmediate(() => this.resync())),
      },
    );
  }

  override async load(listener: StoreListener): Promise<LoadedState> {
    this.listener = listener;
    // Links first: a change another worker makes after the reads below reaches this one.
    await this.links.start();
    for (const { key, value } of this.holders.getRange()) this.holderOf.set(key, value);
    const sessions: LoadedSession[] = [];
    for (const { value: record } of this.sessions.getRange()) {
      this.known.set(record.clientId, record);
      for (const sub of record.subscriptions) listener.routeChanged(record.clientId, sub.filter, sub);
      if (this.holder(record.clientId).slot !== this.machine.slot) continue;
      sessions.push(this.loadSession(record));
      this.hold(record.clientId, this.holder(record.clientId).epoch, record);
    }
    const early = this.early ?? [];
    this.early = undefined;
    for (const handle of early) handle();
    return { sessions, retained: this.allRetained() };
  }

  private whenLoaded<T>(handle: () => T | Promise<T>): Promise<T> {
    if (!this.early) return Promise.resolve(handle());
    return new Promise<T>((resolve, reject) => this.early!.push(() => Promise.resolve(handle()).then(resolve, reject)));
  }

  private holder(clientId: string): Holder {
    const recorded = this.holderOf.get(clientId);
    if (recorded && recorded.slot < this.machine.processes) return recorded;
    // No claim recorded (or one for a worker that no longer exists): where the client id hashes to.
    const assigned = { slot: hashSlot(clientId, this.machine.processes), epoch: recorded?.epoch ?? 0 };
    this.holderOf.set(clientId, assigned);
    return assigned;
  }

  private hold(clientId: string, epoch: number, record: SessionRecord | undefined): void {
    this.held.set(clientId, { clientId, epoch, persistent: (record?.expiryInterval ?? 0) > 0, cursor: this.seqs.get(clientId) ?? 0, unstoredSeq: 0 });
  }

  /**
   * Claims the session for this worker: a new epoch in `holders`, then every other worker hears
   * of it and lets go of it (its pending writes settled) before the stored state is read.
   */
  override async openSession(clientId: string): Promise<LoadedSession | undefined> {
    if (this.closed) throw new StoreError('closed', 'store is closed');
    const slot = this.machine.slot;
    const epoch = await this
      .transact(() => {
        const next = (this.holders.get(clientId)?.epoch ?? 0) + 1;
        void this.holders.put(clientId, { slot, epoch: next });
        return next;
      })
      .catch((e: Error) => {
        throw new StoreError('unavailable', `claim of ${clientId} not stored: ${e.message}`);
      });
    this.noteHolder(clientId, { slot, epoch });
    try {
      await this.links.broadcast({ k: 'claim', id: clientId, epoch } satisfies LinkBody);
    } catch (e) {
      throw new StoreError('unavailable', `claim of ${clientId} not confirmed by every worker: ${(e as Error).message}`);
    }
    const now = this.holder(clientId);
    if (now.slot !== slot || now.epoch !== epoch) throw new StoreError('unavailable', `${clientId} was claimed again meanwhile`);
    await this.last; // what this worker still writes of an earlier session of the client (its end) comes first
    this.root.resetReadTxn();
    const record = this.sessions.get(clientId);
    const loaded = record ? this.loadSession(record) : undefined;
    this.hold(clientId, epoch, record);
    // Entries stored for it while the claim was going on: their wake-ups may have gone elsewhere.
    setImmediate(() => this.readNew(clientId));
    return loaded;
  }

  /**
   * A session that `slot` ended: who held it need not be remembered. A claim by another worker
   * since then is kept; one by `slot` itself comes after this on the same link.
   */
  private forgetHolder(clientId: string, slot: number): void {
    if (this.holderOf.get(clientId)?.slot === slot) this.holderOf.delete(clientId);
  }

  private noteHolder(clientId: string, holder: Holder): void {
    const known = this.holderOf.get(clientId);
    if (!known || holder.epoch >= known.epoch) this.holderOf.set(clientId, holder);
  }

  /** Another worker took the session: close it here, wait for what this worker still writes of it. */
  private async letGo(clientId: string, epoch: number): Promise<void> {
    const held = this.held.get(clientId);
    if (!held || held.epoch >= epoch) return;
    this.held.delete(clientId);
    this.forgetReferences(clientId);
    this.listener?.release(clientId, true); // a claim comes from a CONNECT on the other worker
    await this.last;
  }

  /** Ops on sessions held elsewhere are dropped (fencing); acks of deliveries that were never stored need no write. */
  override commit(ops: StoreOp[]): Promise<void> {
    let kept = ops;
    for (let i = 0; i < ops.length; i++) {
      if (this.needsWrite(ops[i]!)) continue;
      kept = ops.filter((op) => this.needsWrite(op));
      break;
    }
    // This worker routes by a changed subscription at once, as one process does: a PUBLISH the
    // client sends right behind its SUBSCRIBE must reach it. The others hear of it after the commit.
    for (const op of kept) {
      if (op.op !== 'putSession' && op.op !== 'deleteSession') continue;
      const clientId = op.op === 'putSession' ? op.record.clientId : op.clientId;
      if (!this.held.has(clientId)) continue;
      if (this.refreshKnown(clientId, op.op === 'putSession' ? op.record : undefined)) this.unannounced.add(clientId);
      if (op.op === 'deleteSession') this.forgetHolder(clientId, this.machine.slot);
    }
    return super.commit(kept);
  }

  /** Sessions whose routes changed here and that the other workers have not been told of yet. */
  private readonly unannounced = new Set<string>();

  private needsWrite(op: StoreOp): boolean {
    switch (op.op) {
      case 'dequeue':
      case 'setDeliveryState': {
        const held = this.held.get(op.clientId);
        return held !== undefined && held.persistent && op.seq > 0;
      }
      case 'enqueue':
        return false; // a delivery the core made itself (retained): not stored, as in cluster mode
      default:
        return true;
    }
  }

  protected override prepare(ops: StoreOp[]): MachineBatch {
    const batch: MachineBatch = { queuedFor: new Map(), plans: new Map(), sessions: new Set(), retained: new Set(), ended: new Set(), counters: new Map() };
    for (const op of ops) {
      if (op.op === 'deleteSession') batch.ended.add(op.clientId);
      else if (op.op === 'putSession') batch.ended.delete(op.record.clientId);
      if (op.op !== 'publish') continue;
      const plan = this.plan(op.message, op.clientIds, op.targets);
      batch.plans.set(op.message, plan);
      batch.queuedFor!.set(op.message, plan.stored.length);
    }
    return batch;
  }

  /** Which recipients get the message stored (persistent, QoS > 0 for them) and which get it on the link. */
  private plan(message: Message, clientIds: string[], targets: ReadonlyMap<string, DeliveryTarget> | undefined): PublishPlan {
    const plan: PublishPlan = { message, targets, stored: [], unstored: [] };
    for (const clientId of clientIds) {
      const record = this.known.get(clientId);
      if (!record) continue;
      // Only a stored entry needs the delivery's QoS and subscription ids here: the holder's core
      // matches the others itself (or takes this router's match, when it is this worker).
      const stored = record.expiryInterval > 0 && message.qos > 0;
      const target = stored ? (targets?.get(clientId) ?? deliveryTarget(clientId, record.subscriptions, message)) : undefined;
      if (target && target.qos > 0) plan.stored.push({ clientId, target });
      else plan.unstored.push(clientId);
    }
    return plan;
  }

  protected override async write(ops: StoreOp[]): Promise<void> {
    const batch = this.prepare(ops);
    // Messages for clean sessions only, and nothing else: nothing to store.
    const stores = ops.some((op) => op.op !== 'publish' || batch.plans.get(op.message)!.stored.length > 0);
    if (stores) await this.writeBatch(ops, batch);
    await this.afterCommit(ops, batch);
  }

  /** Runs inside the write transaction; session ops of sessions held elsewhere are dropped. */
  protected override apply(op: StoreOp, batch: MachineBatch): void {
    switch (op.op) {
      case 'publish':
        this.storeFor(batch.plans.get(op.message), batch);
        return;
      case 'putRetained':
      case 'deleteRetained':
        batch.retained.add(op.op === 'putRetained' ? op.message.topic : op.topic);
        super.apply(op, batch);
        return;
      case 'putSession':
      case 'deleteSession': {
        const clientId = op.op === 'putSession' ? op.record.clientId : op.clientId;
        const held = this.held.get(clientId);
        if (!held) return;
        batch.sessions.add(clientId);
        const mine = this.holders.get(clientId);
        if (op.op === 'deleteSession') {
          // Entries other workers stored since the last read: their message references are released too.
          for (const { value } of this.queue.getRange({ start: [clientId, held.cursor + 1], end: [clientId, MAX_SEQ] })) this.readEntry(clientId, value);
          batch.counters.delete(clientId);
          void this.seqs.remove(clientId);
          if (mine?.slot === this.machine.slot && mine.epoch === held.epoch) void this.holders.remove(clientId);
        } else if (op.record.expiryInterval > 0 && this.seqs.get(clientId) === undefined) {
          void this.seqs.put(clientId, held.cursor);
        }
        held.persistent = op.op === 'putSession' && op.record.expiryInterval > 0;
        super.apply(op, batch);
        if (batch.ended.has(clientId)) {
          this.held.delete(clientId);
          this.forgetReferences(clientId);
        }
        return;
      }
      default:
        if (!this.held.has(op.clientId)) return;
        super.apply(op, batch);
    }
  }

  protected override finishBatch(batch: MachineBatch): void {
    for (const [clientId, seq] of batch.counters) void this.seqs.put(clientId, seq);
  }

  /** Queue entries for the stored recipients, each at the next sequence of its session's counter. */
  private storeFor(plan: PublishPlan | undefined, batch: MachineBatch): void {
    if (!plan) return;
    for (const recipient of plan.stored) {
      const { clientId, target } = recipient;
      const last = batch.counters.get(clientId) ?? this.seqs.get(clientId);
      if (last === undefined) continue; // the session ended meanwhile
      const seq = last + 1;
      batch.counters.set(clientId, seq);
      recipient.seq = seq;
      super.apply(
        {
          op: 'enqueue',
          clientId,
          entry: {
            seq,
            packetId: packetIdOf(seq),
            message: plan.message,
            qos: target.qos,
            subscriptionIds: target.subscriptionIds,
            retainAsPublished: target.retainAsPublished,
            state: 'queued',
            shareGroup: target.sharedFilter,
          },
        },
        batch,
      );
    }
  }

  /** Wakes the holders of what was stored, sends what was not, and makes every worker see changed routes and retained messages. */
  private async afterCommit(ops: StoreOp[], batch: MachineBatch): Promise<void> {
    // In publish order: this worker's sessions at once, the others' in one frame per worker.
    const remote = new Frames();
    const me = this.machine.slot;
    for (const op of ops) {
      const plan = op.op === 'publish' ? batch.plans.get(op.message) : undefined;
      if (!plan) continue;
      for (const { clientId, seq, target } of plan.stored) {
        if (seq === undefined) continue;
        const slot = this.holder(clientId).slot;
        if (slot !== me) remote.stored(slot, clientId, seq);
        else if (this.held.get(clientId)?.cursor === seq - 1) this.deliverStored(clientId, seq, plan.message, target);
        else this.readNew(clientId, seq); // entries other workers stored come first
      }
      for (const clientId of plan.unstored) {
        const slot = this.holder(clientId).slot;
        if (slot === me) this.deliverUnstored(clientId, plan.message, plan.targets?.get(clientId));
        else remote.unstored(slot, plan.message, clientId);
      }
    }
    this.send(remote);

    const waits: Promise<void>[] = [];
    if (batch.sessions.size > 0) {
      const ids = [...batch.sessions].filter((id) => this.unannounced.delete(id));
      if (ids.length > 0) waits.push(this.links.broadcast({ k: 'routes', ids } satisfies LinkBody));
    }
    if (batch.retained.size > 0) {
      const topics = [...batch.retained];
      for (const topic of topics) this.listener?.retainedChanged(topic, this.retained.get(topic));
      waits.push(this.links.broadcast({ k: 'retained', topics } satisfies LinkBody));
    }
    if (waits.length > 0) {
      try {
        await Promise.all(waits);
      } catch (e) {
        if (!(e instanceof LinkError)) throw new StoreError('unavailable', `a worker did not take the change: ${(e as Error).message}`);
      }
    }
  }

  /**
   * Brings this worker's view of a session's record up to date (undefined: the session is gone)
   * and tells the core which routes changed. Returns whether the routes or persistence changed.
   */
  private refreshKnown(clientId: string, record: SessionRecord | undefined): boolean {
    const before = this.known.get(clientId);
    if (record) this.known.set(clientId, record);
    else this.known.delete(clientId);
    const was = new Map((before?.subscriptions ?? []).map((s) => [s.filter, s]));
    const now = new Map((record?.subscriptions ?? []).map((s) => [s.filter, s]));
    let differs = (before?.expiryInterval ?? -1) !== (record?.expiryInterval ?? -1);
    for (const [filter, sub] of now) {
      if (sameSubscription(was.get(filter), sub)) continue;
      differs = true;
      this.listener?.routeChanged(clientId, filter, sub);
    }
    for (const filter of was.keys()) {
      if (now.has(filter)) continue;
      differs = true;
      this.listener?.routeChanged(clientId, filter, undefined);
    }
    return differs;
  }

  /**
   * Hands the core what was stored for a held session past its cursor (up to `upTo`), in order.
   * `resetRead` false: the caller renewed LMDB's read snapshot after what it reads was committed.
   */
  private readNew(clientId: string, upTo = MAX_SEQ, resetRead = true): void {
    const held = this.held.get(clientId);
    if (!held || !this.listener || held.cursor >= upTo) return;
    if (resetRead) this.root.resetReadTxn();
    const deliveries: StoredDelivery[] = [];
    for (const { key, value } of this.queue.getRange({ start: [clientId, held.cursor + 1], end: [clientId, upTo + 1] })) {
      held.cursor = key[1];
      const entry = this.readEntry(clientId, value, true);
      if (!entry) continue;
      // Delivered as it was matched when stored, as one process delivers its queue: a retained
      // message a SUBSCRIBE queued keeps its RETAIN flag, which this session's subscriptions alone would not give it.
      const target: DeliveryTarget = { qos: entry.qos, subscriptionIds: entry.subscriptionIds, retainAsPublished: entry.retainAsPublished };
      if (entry.shareGroup !== undefined) target.sharedFilter = entry.shareGroup;
      deliveries.push({ seq: entry.seq, packetId: entry.packetId ?? packetIdOf(entry.seq), message: entry.message, target });
    }
    if (deliveries.length > 0) this.listener.deliver(clientId, deliveries);
  }

  /** An entry this worker just stored for a session it holds, right after the ones it already read: handed over as it is. */
  private deliverStored(clientId: string, seq: number, message: Message, target: DeliveryTarget): void {
    const held = this.held.get(clientId)!;
    held.cursor = seq;
    this.listener?.deliver(clientId, [{ seq, packetId: packetIdOf(seq), message, target }]);
  }

  /** `target`: this worker's router matched it when it was published here. */
  private deliverUnstored(clientId: string, message: Message, target?: DeliveryTarget): void {
    const held = this.held.get(clientId);
    if (!held || !this.listener) return;
    const seq = held.persistent ? --held.unstoredSeq : ++held.unstoredSeq;
    this.listener.deliver(clientId, [{ seq, packetId: packetIdOf(Math.abs(seq)), message, unrecorded: true, target }]);
  }

  /**
   * A worker opened its link to this one: what it stored before then was not heard here. Reads
   * holders, routes and retained messages again, and what is new for the sessions held here.
   */
  private resync(): void {
    this.root.resetReadTxn();
    for (const { key, value } of this.holders.getRange()) this.noteHolder(key, value);
    // The sessions held here are known here first (a change is routed by before it commits): LMDB
    // may not have it yet. The others' are what LMDB has.
    const stored = new Set<string>();
    for (const { value: record } of this.sessions.getRange()) {
      stored.add(record.clientId);
      if (!this.held.has(record.clientId)) this.refreshKnown(record.clientId, record);
    }
    for (const clientId of [...this.known.keys()]) if (!stored.has(clientId) && !this.held.has(clientId)) this.refreshKnown(clientId, undefined);
    for (const message of this.allRetained()) this.listener?.retainedChanged(message.topic, message);
    for (const clientId of this.held.keys()) this.readNew(clientId);
  }

  private async onRequest(from: number, body: LinkBody): Promise<void> {
    switch (body.k) {
      case 'claim':
        this.noteHolder(body.id, { slot: from, epoch: body.epoch });
        return this.letGo(body.id, body.epoch);
      case 'routes':
        this.root.resetReadTxn();
        for (const id of body.ids) {
          const record = this.sessions.get(id);
          this.refreshKnown(id, record);
          if (!record) this.forgetHolder(id, from);
        }
        return;
      case 'retained':
        this.root.resetReadTxn();
        for (const topic of body.topics) this.listener?.retainedChanged(topic, this.retained.get(topic));
        return;
      default:
        return;
    }
  }

  private onNotice(body: LinkBody): void {
    if (body.k === 'deliver') this.deliverAll(body.items.map(fromWire));
  }

  /**
   * Deliveries for sessions held here, in order; those of a session held elsewhere now are passed
   * on to its holder, and those of a session being claimed here are read when the claim ends.
   */
  private deliverAll(items: Delivery[]): void {
    const passOn = new Frames();
    const me = this.machine.slot;
    // Everything the frame wakes for was committed before it was sent: one fresh snapshot, and one
    // read per session, up to its last entry named (a message not stored for it first goes out before).
    const reads = new Map<string, number>();
    let fresh = false;
    const read = (clientId: string): void => {
      const upTo = reads.get(clientId);
      if (upTo === undefined) return;
      reads.delete(clientId);
      if (!fresh) this.root.resetReadTxn();
      fresh = true;
      this.readNew(clientId, upTo, false);
    };
    for (const item of items) {
      if (item[0] === 'stored') {
        const [, clientId, seq] = item;
        if (this.held.has(clientId)) reads.set(clientId, Math.max(seq, reads.get(clientId) ?? 0));
        else {
          const slot = this.holder(clientId).slot;
          if (slot !== me) passOn.stored(slot, clientId, seq);
        }
        continue;
      }
      const [, message, ids] = item;
      for (const clientId of ids) {
        if (this.held.has(clientId)) {
          read(clientId);
          this.deliverUnstored(clientId, message);
        } else {
          const slot = this.holder(clientId).slot;
          if (slot !== me) passOn.unstored(slot, message, clientId);
        }
      }
    }
    for (const clientId of [...reads.keys()]) read(clientId);
    this.send(passOn);
  }

  private send(frames: Frames): void {
    for (const [slot, items] of frames.bySlot) this.links.notify(slot, { k: 'deliver', items: items.map(toWire) } satisfies LinkBody);
  }

  override async close(): Promise<void> {
    await this.links.close();
    await super.close();
  }
}

/**
 * Deliveries for other workers, one frame per worker, in publish order. A session's wake-ups that
 * follow each other are one (read up to the last sequence named): a session gets many entries in
 * a batch, and each wake-up costs its holder a read.
 */
class Frames {
  readonly bySlot = new Map<number, Delivery[]>();
  /** Where a session's last wake-up is in its frame, while nothing else for that session came after it. */
  private readonly lastWake = new Map<string, number>();

  stored(slot: number, clientId: string, seq: number): void {
    const items = this.frame(slot);
    const at = this.lastWake.get(clientId);
    if (at !== undefined) items[at] = ['stored', clientId, seq];
    else this.lastWake.set(clientId, items.push(['stored', clientId, seq]) - 1);
  }

  /** Adds a recipient to the last item when that is the same message. */
  unstored(slot: number, message: Message, clientId: string): void {
    this.lastWake.delete(clientId);
    const items = this.frame(slot);
    const last = items[items.length - 1];
    if (last && last[0] === 'unstored' && last[1] === message) last[2].push(clientId);
    else items.push(['unstored', message, [clientId]]);
  }

  private frame(slot: number): Delivery[] {
    let items = this.bySlot.get(slot);
    if (!items) this.bySlot.set(slot, (items = []));
    return items;
  }
}

function sameSubscription(a: StoredSubscription | undefined, b: StoredSubscription): boolean {
  return (
    a !== undefined &&
    a.qos === b.qos &&
    a.noLocal === b.noLocal &&
    a.retainAsPublished === b.retainAsPublished &&
    a.retainHandling === b.retainHandling &&
    a.subscriptionId === b.subscriptionId
  );
}
