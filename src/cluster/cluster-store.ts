// The RocketMQ implementation of Store: cluster mode (docs/cluster.md). Nothing here is kept only
// in this process: every session, subscription, retained message and delivery state is in RocketMQ.
import { randomUUID } from 'node:crypto';
import { type Message as RocketMessage, type MessageQueue, RocketMQClient, createUniqKey } from '../rocketmq';
import { deliveryTarget } from '../store/delivery';
import type {
  LoadedSession,
  LoadedState,
  Message,
  QueueEntryRecord,
  SessionRecord,
  Store,
  StoreListener,
  StoreOp,
  StoredDelivery,
  StoredSubscription,
} from '../store/types';
import { StoreError } from '../store/types';
import { topicMatches } from '../protocol/topics';
import { recordedBrokers, untilReachable } from './broker-set';
import { DownlinkReader } from './downlink';
import { Membership } from './membership';
import { Unreadable, decodeMessage, encodeMessage } from './message-codec';
import { ClusterNames, digest } from './names';
import { QueueTail, readQueue } from './queue-tail';
import { type Change, type LogRecord, SessionLogFold, type SessionState, decodeRecord, encodeRecord, trackHeld } from './session-log';

export interface ClusterLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ClusterStoreOptions {
  namesrv: string;
  nodeId: string;
  clusterName: string;
  /** A node whose heartbeat was not seen for this long is dead to the others (ms). */
  nodeLeaseMs: number;
  /** Queues of the message topic on each broker. */
  messageQueues: number;
  /** How long a CONNECT waits for the node that held the session to let go (ms). */
  claimTimeoutMs: number;
  /** Change records after which the owner writes a snapshot. */
  snapshotEvery: number;
  /** A held session gets a fresh snapshot at least this often (RocketMQ's retention deletes old ones). */
  snapshotRenewMs: number;
  /** Deliveries read for a session when it is opened, at most (the rest follow as they are read). */
  openReadLimit: number;
  /** The bridge's uplink: which MQTT messages go to which RocketMQ topic (docs/bridge.md). */
  uplink: UplinkRoute[];
  /** The bridge's downlink topic; undefined: no downlink. */
  downlinkTopic: string | undefined;
  /** Largest payload a downlink message may carry. */
  maxPayload: number;
  log: ClusterLog;
}

/** A route of the bridge's uplink (the config's `bridgeUplink`): '' topic = the message topic, '' tag = the first level. */
export interface UplinkRoute {
  filter: string;
  topic: string;
  tag: string;
}

/** Properties of a QoS 2 PUBLISH whose "received" record is the message itself, in the publisher's log. */
const QOS2_EPOCH = 'iotb_epoch';
const QOS2_PACKET_ID = 'iotb_qos2_id';
/** Inbox names per SEND: properties are capped at 32 KiB, one name is ~60 bytes. */
const DISPATCH_CHUNK = 400;
const LONG_POLL_MS = 5000;
const READ_BATCH = 32;
/** Entries per inbox instance whose UNIQ_KEY a reader remembers, to drop a retried SEND's second copy. */
const DEDUPE_WINDOW = 1024;
/** Entries before its start offset a reader reads for their UNIQ_KEYs only (a copy that straddles a takeover). */
const DEDUPE_PREREAD = 256;

interface Position {
  broker: string;
  offset: number;
}

/** A session this node holds: it claimed it and is the only one writing it. */
interface HeldSession {
  clientId: string;
  epoch: number;
  log: MessageQueue;
  state: SessionState;
  /** Subscriptions as written to the index. */
  indexed: Map<string, StoredSubscription>;
  inboxTails: QueueTail[];
  positions: Map<number, Position>;
  /** UNIQ_KEYs of the entries read last, per inbox instance (broker). */
  recentKeys: Map<string, { keys: Set<string>; order: string[] }>;
  /** Writes of this session, in order: each waits for the one before. */
  chain: Promise<void>;
  changesSinceSnapshot: number;
  /** When its last snapshot was written (ms). */
  snapshotAt: number;
  released: boolean;
}

/** A record of the subscription index: which inbox wants which filter. */
interface IndexRecordBody {
  clientId: string;
  filter: string;
  inbox: string;
  sub: StoredSubscription;
}

/** Packet id of the delivery at (broker, offset): the same on every node, after every crash (G4). */
export function packetIdAt(broker: string, offset: number): number {
  const slot = parseInt(digest(broker).slice(0, 2), 16) % 16;
  return 1 + ((offset * 16 + slot) % 65535);
}

export class ClusterStore implements Store {
  readonly kind = 'rocketmq';
  readonly deliversThroughStore = true;
  readonly mq: RocketMQClient;
  readonly names: ClusterNames;
  readonly membership: Membership;
  private listener: StoreListener | undefined;
  private readonly held = new Map<string, HeldSession>();
  /** Writes issued outside every session chain (retained messages, publishes, acks), until they settle. */
  private readonly inFlight = new Set<Promise<void>>();
  /** The last retained write of each topic still in flight (settled: never rejects). */
  private readonly retainedWrites = new Map<string, Promise<void>>();
  private readonly uniqKeys = new WeakMap<Message, string>();
  /** Messages from the downlink: never sent back to an uplink topic. */
  private readonly fromDownlink = new WeakSet<Message>();
  /** Topics that hold MQTT messages (the message topic, uplink topics): `messageQueues` queues per broker. */
  private readonly dataTopics = new Set<string>();
  private downlink: DownlinkReader | undefined;
  private nextSeq = 1;
  private readonly inboxOf = new Map<string, string>();
  private readonly indexByKey = new Map<string, IndexRecordBody>();
  private indexTails: QueueTail[] = [];
  private retainedTails: QueueTail[] = [];
  private readonly retainedByKey = new Map<string, Message>();
  private brokers: string[] = [];
  private closed = false;
  private orphanTimer: NodeJS.Timeout | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private lookingAfter = false;
  /** Sessions a CONNECT on this node is claiming: looking after a dead node's sessions skips them. */
  private readonly claiming = new Set<string>();
  /** What this node has read of the members topic and of each member's node log. */
  private readonly membersRead = new Map<string, number>();
  private readonly nodeLogs = new Map<string, { next: Map<string, number>; held: Map<string, string> }>();

  constructor(readonly options: ClusterStoreOptions) {
    this.mq = new RocketMQClient({ namesrvAddr: options.namesrv, requestTimeoutMs: 5000 });
    this.names = new ClusterNames(options.clusterName);
    this.membership = new Membership(this.mq, this.names, options.nodeId, options.nodeLeaseMs, options.log, (signal) => this.onSignal(signal));
  }

  /** Ready to serve: the lease is valid and the index and retained messages are followed. */
  get ready(): boolean {
    return !this.closed && this.listener !== undefined && this.membership.leaseValid();
  }

  // ---- Store ------------------------------------------------------------------------------

  async load(listener: StoreListener): Promise<LoadedState> {
    this.listener = listener;
    const n = this.names;
    this.dataTopics.add(n.messages);
    for (const route of this.options.uplink) if (route.topic !== '') this.dataTopics.add(route.topic);
    for (const topic of this.dataTopics) await this.ensureTopic(topic, this.options.messageQueues);
    if (this.options.downlinkTopic !== undefined) await this.ensureTopic(this.options.downlinkTopic, this.options.messageQueues);
    await this.ensureTopic(n.logs, 1);
    await this.ensureTopic(n.nodes, 1);
    await this.ensureTopic(n.subscriptions, 1, true);
    await this.ensureTopic(n.retained, 1, true);
    await this.ensureTopic(n.meta, 1);
    this.brokers = await recordedBrokers(this.mq, n, this.options.nodeId, this.options.log);
    await untilReachable(this.mq, n, this.brokers, this.options.log, () => this.closed);

    // Queue 0 on every recorded broker, whether the route lists it now or not.
    const onEveryBroker = (topic: string): MessageQueue[] => this.brokers.map((brokerName) => ({ topic, queueId: 0, brokerName }));
    this.indexTails = onEveryBroker(n.subscriptions).map(
      (queue) => new QueueTail(this.mq, queue, 0, { suspendMs: LONG_POLL_MS, maxMessages: READ_BATCH, onMessages: (m) => this.onIndex(m), onError: (e) => this.readError('index', e) }),
    );
    this.retainedTails = onEveryBroker(n.retained).map(
      (queue) => new QueueTail(this.mq, queue, 0, { suspendMs: LONG_POLL_MS, maxMessages: READ_BATCH, onMessages: (m) => this.onRetained(m), onError: (e) => this.readError('retained', e) }),
    );
    for (const tail of [...this.indexTails, ...this.retainedTails]) tail.start();
    await Promise.all([...this.indexTails, ...this.retainedTails].map((t) => t.barrier()));
    await this.membership.start(this.brokers);
    await this.ensureTopic(n.members, 1, true);
    const membersQueue = (await this.mq.getPublishQueues(n.members))[0]!;
    await this.mq.send({ topic: n.members, body: JSON.stringify({ nodeId: this.options.nodeId }), keys: [digest(this.options.nodeId)] }, { queue: membersQueue });
    if (this.options.downlinkTopic !== undefined) {
      this.downlink = new DownlinkReader(this.mq, this.membership, {
        topic: this.options.downlinkTopic,
        group: `${n.cluster}_bridge`,
        maxPayload: this.options.maxPayload,
        log: this.options.log,
        publish: (message, uniqKey) => {
          this.uniqKeys.set(message, uniqKey);
          this.fromDownlink.add(message);
          return this.listener!.bridged(message);
        },
        rejected: () => this.listener?.unreadable('downlink'),
      });
      this.downlink.start();
    }
    this.orphanTimer = setInterval(() => void this.lookAfterDeadNodes(), Math.max(200, Math.floor(this.options.nodeLeaseMs / 2)));
    this.orphanTimer.unref();
    this.renewTimer = setInterval(() => this.renewSnapshots(), Math.max(500, Math.floor(this.options.snapshotRenewMs / 8)));
    this.renewTimer.unref();
    this.options.log.info(
      { node: this.membership.nodeKey, brokers: this.brokers, routes: this.indexByKey.size, retained: this.retainedByKey.size },
      'cluster store ready',
    );
    return { sessions: [], retained: [] };
  }

  /** Creates a topic of the cluster on every broker that lacks it (another node may be doing the same). */
  private async ensureTopic(topic: string, queueNums: number, compacted = false): Promise<void> {
    const brokers = [...(await this.mq.clusterInfo()).brokerAddrTable.keys()];
    const routed = await this.mq.getTopicRoute(topic, true).then(
      (route) => new Set(route.queues.map((q) => q.brokerName)),
      () => new Set<string>(),
    );
    const missing = brokers.filter((b) => !routed.has(b));
    if (missing.length === 0) return;
    try {
      await this.mq.createTopic(topic, { queueNums, brokerNames: missing, attributes: compacted ? '+cleanup.policy=COMPACTION' : undefined });
    } catch (e) {
      // A compacted topic cannot be created twice: another node just created it.
      if (!/unchangeable attribute/.test((e as Error).message)) throw e;
      await this.mq.getTopicRoute(topic, true);
    }
  }

  /**
   * The read barrier (docs/cluster.md §6). A call made while a barrier is in flight waits for the
   * next one, which starts after it: a barrier must begin after its caller. Calls sharing a
   * barrier share its promise, and barriers resolve one after the other, so callers resume in
   * call order (the core routes publishes in the order they arrived: G5).
   */
  sync(): Promise<void> {
    if (this.nextBarrier) return this.nextBarrier;
    if (!this.barrierInFlight) return (this.barrierInFlight = this.runBarrier());
    const after = (): Promise<void> => {
      this.nextBarrier = undefined;
      return (this.barrierInFlight = this.runBarrier());
    };
    this.nextBarrier = this.barrierInFlight.then(after, after);
    return this.nextBarrier;
  }

  private barrierInFlight: Promise<void> | undefined;
  private nextBarrier: Promise<void> | undefined;

  private runBarrier(): Promise<void> {
    // A broker that cannot answer holds only records of sessions homed on it, which cannot change
    // while it is down: its part of the barrier is what this node has read so far.
    const barrier = (t: QueueTail): Promise<void> =>
      t.barrier().catch((e: Error) => this.readError(`barrier on ${t.queue.brokerName}`, e));
    const done = Promise.all([...this.indexTails, ...this.retainedTails].map(barrier)).then(
      () => undefined,
      (e: Error) => {
        throw new StoreError('unavailable', `RocketMQ read barrier failed: ${e.message}`);
      },
    );
    const clear = (): void => {
      if (this.barrierInFlight === done) this.barrierInFlight = undefined;
    };
    done.then(clear, clear);
    return done;
  }

  async openSession(clientId: string): Promise<LoadedSession | undefined> {
    this.assertServing();
    // A newer openSession of the same client on this node (the client gave up waiting and
    // connected again) supersedes this one: this one stops claiming, so it never fences the newer.
    const ticket = (this.opening.get(clientId) ?? 0) + 1;
    this.opening.set(clientId, ticket);
    const superseded = (): boolean => this.opening.get(clientId) !== ticket;
    const previous = this.held.get(clientId);
    if (previous) await this.letGo(previous, false); // a claim by this node again: a new epoch, cleanly
    this.claiming.add(clientId);
    try {
      // A later claim wins. One that came in between (another node looking after the session of
      // a dead node, or a client racing on another node) is taken over by claiming again.
      for (let attempt = 1; ; attempt++) {
        if (superseded()) throw new ClaimLost(clientId);
        try {
          return await this.claim(clientId);
        } catch (e) {
          if (!(e instanceof ClaimLost) || attempt >= 3) throw e;
        }
      }
    } catch (e) {
      if (e instanceof StoreError) throw e;
      throw new StoreError('unavailable', `session ${clientId} could not be opened: ${(e as Error).message}`);
    } finally {
      if (!superseded()) {
        this.claiming.delete(clientId);
        this.opening.delete(clientId);
      }
    }
  }

  /** openSession calls in progress, by client id: the latest one's ticket. */
  private readonly opening = new Map<string, number>();

  commit(ops: StoreOp[]): Promise<void> {
    if (ops.length === 0) return this.settled();
    if (this.closed) return Promise.reject(new StoreError('closed', 'store is closed'));
    if (!this.membership.leaseValid()) {
      return Promise.reject(new StoreError('unavailable', 'this node has no valid lease: RocketMQ unreachable'));
    }
    const key = primaryClient(ops);
    const held = key !== undefined ? this.held.get(key) : undefined;
    // Delivery progress (acks, PUBREC states, releases) need not wait for the session's other
    // writes: the change batches keep their order, and coalesce one session's many acks.
    if (!held || ops.every((op) => op.op === 'dequeue' || op.op === 'setDeliveryState' || op.op === 'deleteInboundQos2')) return this.unchained(this.write(ops));
    const done = held.chain.then(() => this.write(ops));
    held.chain = done.catch(() => undefined);
    return done;
  }

  /** Resolves once every write issued so far has settled (the empty commit's promise). */
  private settled(): Promise<void> {
    return Promise.all([...[...this.held.values()].map((h) => h.chain), ...this.inFlight]).then(() => undefined);
  }

  /** A write not ordered behind a held session's chain: tracked so that an empty commit waits for it too. */
  private unchained(write: Promise<void>): Promise<void> {
    const settled = write.catch(() => undefined);
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
    return write;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.orphanTimer) clearInterval(this.orphanTimer);
    if (this.renewTimer) clearInterval(this.renewTimer);
    await this.downlink?.stop();
    await this.settled();
    for (const held of this.held.values()) for (const tail of held.inboxTails) void tail.stop();
    for (const tail of [...this.indexTails, ...this.retainedTails]) void tail.stop();
    await this.membership.stop();
    this.mq.close();
  }

  // ---- claiming a session (docs/cluster.md §4) ---------------------------------------------

  /**
   * `fromDead`: claim only to look after the session of that dead node. If anyone else owns it
   * by the time the claim is in the log (a client reconnected somewhere), this claim gives up
   * instead of taking the session from a live owner.
   */
  private async claim(clientId: string, fromDead?: string): Promise<LoadedSession | undefined> {
    const log = this.homeQueue(this.names.logs, clientId);
    const logName = this.names.sessionLog(clientId);
    const logQueue: MessageQueue = { topic: logName, queueId: 0, brokerName: log.brokerName };
    const nonce = randomUUID();
    const claimRecord: LogRecord = { t: 'claim', node: this.membership.nodeKey, nonce };
    const sent = await this.mq.sendToLmqs({ topic: this.names.logs, body: encodeRecord(claimRecord), tags: 'claim' }, [logName], { queue: log });
    const claimOffset = sent.lmqOffsets.get(logName)!;

    const { fold, next } = await this.readLog(clientId, logQueue, claimOffset);
    const epoch = fold.epochOf(nonce);
    if (epoch === undefined) throw new StoreError('unavailable', `claim of ${clientId} not found in its log`);
    let reader = next;
    const deadline = Date.now() + this.options.claimTimeoutMs;
    let signalled = false;
    // Wait until the previous owner has let go, or is dead (its lease expired).
    if (fromDead !== undefined && (fold.activeNode !== fromDead || fold.handedOff)) throw new ClaimLost(clientId);
    while (fold.active !== 0 && !fold.handedOff && !this.membership.isDead(fold.activeNode)) {
      if (fold.claims > epoch || fromDead !== undefined) throw new ClaimLost(clientId);
      if (Date.now() > deadline) throw new StoreError('unavailable', `node ${fold.activeNode} did not hand session ${clientId} over in time`);
      if (!signalled) {
        await this.membership.signal(fold.activeNode, { t: 'takeover', clientId, epoch });
        signalled = true;
      }
      reader = await this.readMore(logQueue, fold, reader, Math.min(1000, Math.max(1, deadline - Date.now())));
    }
    if (fold.claims > epoch) throw new ClaimLost(clientId);

    const previousOwner = fold.activeNode;
    // Read what is left, then write the snapshot that makes this node the owner.
    const end = (await this.mq.getMaxOffset(logQueue)) - 1;
    if (end >= reader) reader = (await this.readLog(clientId, logQueue, end, fold, reader)).next;
    const state = fold.state;
    const snapshot: LogRecord = { t: 'snapshot', e: epoch, node: this.membership.nodeKey, state, clientId };
    // Also in this node's log: if this node dies, the others find the session there.
    const nodeLog = this.names.nodeLog(this.options.nodeId);
    const written = await this.mq.sendToLmqs({ topic: this.names.logs, body: encodeRecord(snapshot), tags: 'snapshot' }, [logName, nodeLog], { queue: log });
    const snapshotOffset = written.lmqOffsets.get(logName)!;
    await this.readLog(clientId, logQueue, snapshotOffset, fold, reader);
    if (!fold.owns(epoch)) throw new ClaimLost(clientId);
    void this.mq.updateConsumerOffset(logName, logQueue, snapshotOffset).catch(() => undefined); // the hint; a lost one costs reading

    const held: HeldSession = {
      clientId,
      epoch,
      log,
      state: fold.state,
      indexed: new Map((fold.state.record?.subscriptions ?? []).map((s) => [s.filter, s])),
      inboxTails: [],
      positions: new Map(),
      recentKeys: new Map(),
      chain: Promise.resolve(),
      changesSinceSnapshot: 0,
      snapshotAt: Date.now(),
      released: false,
    };
    this.held.set(clientId, held);
    this.options.log.debug({ clientId, epoch, previous: previousOwner || undefined }, 'session claimed');
    const record = fold.state.record;
    if (!record) return undefined;
    const queue = await this.openInbox(held, record);
    return { record, queue, inboundQos2: [...fold.state.inboundQos2] };
  }

  /**
   * Reads the session log from its snapshot hint until `until` has been read; folds it. Without a
   * usable hint it folds from the log's first entry that RocketMQ still keeps: a partial fold
   * when retention deleted the start (it anchors its epochs at the first snapshot).
   */
  private async readLog(clientId: string, queue: MessageQueue, until: number, fold?: SessionLogFold, from?: number): Promise<{ fold: SessionLogFold; next: number }> {
    let next = from ?? (await this.mq.queryConsumerOffset(queue.topic, queue).catch(() => undefined)) ?? 0;
    const hint = from === undefined && next > 0 ? next : undefined;
    let folded = fold;
    while (next <= until) {
      const result = await this.mq.pull(queue, next, { maxMessages: READ_BATCH, suspendMs: 1000 });
      for (const m of result.messages) {
        if (m.queueOffset < next) continue;
        if (!folded) {
          const first = decodeRecord(m.body);
          if (hint !== undefined) {
            // The hint points at a snapshot; anything else means the hint was lost (or its snapshot deleted).
            if (first?.t !== 'snapshot' || m.queueOffset !== hint) return this.readLog(clientId, queue, until, undefined, 0);
            folded = SessionLogFold.fromSnapshot(clientId, first);
            continue;
          }
          folded = new SessionLogFold(clientId, m.queueOffset > 0);
        }
        this.applyLogMessage(folded, m);
      }
      if (result.status === 'OFFSET_ILLEGAL' || result.nextBeginOffset > next) next = result.nextBeginOffset;
    }
    return { fold: folded ?? new SessionLogFold(clientId), next };
  }

  /** One long poll on the log: folds what arrives within `waitMs`. */
  private async readMore(queue: MessageQueue, fold: SessionLogFold, from: number, waitMs: number): Promise<number> {
    const result = await this.mq.pull(queue, from, { maxMessages: READ_BATCH, suspendMs: waitMs });
    for (const m of result.messages) if (m.queueOffset >= from) this.applyLogMessage(fold, m);
    return Math.max(from, result.nextBeginOffset);
  }

  private applyLogMessage(fold: SessionLogFold, m: RocketMessage): void {
    const packetId = m.properties[QOS2_PACKET_ID];
    if (packetId !== undefined) {
      fold.applyReceived(Number(m.properties[QOS2_EPOCH]), Number(packetId));
      return;
    }
    const record = decodeRecord(m.body);
    if (record) fold.apply(record);
    else this.options.log.warn({ msgId: m.uniqKey, topic: m.topic }, 'unreadable session log record skipped');
  }

  /** Starts reading the session's inbox; returns what is there now (up to the open limit). */
  private async openInbox(held: HeldSession, record: SessionRecord): Promise<QueueEntryRecord[]> {
    const entries: QueueEntryRecord[] = [];
    const inbox = this.names.inbox(held.clientId, held.state.incarnation);
    for (const broker of this.brokers) {
      const queue: MessageQueue = { topic: inbox, queueId: 0, brokerName: broker };
      const positions = held.state.inbox[broker] ?? { floor: 0, done: [], pubrec: [] };
      const done = new Set(positions.done);
      const pubrec = new Set(positions.pubrec);
      let next = positions.floor;
      await this.preReadKeys(held, queue, next);
      const end = (await this.mq.getMaxOffset(queue)) - 1;
      const dropped: Change[] = [];
      while (next <= end && entries.length < this.options.openReadLimit) {
        const result = await this.mq.pull(queue, next, { maxMessages: READ_BATCH });
        for (const m of result.messages) {
          if (m.queueOffset < next) continue;
          const copy = this.seenBefore(held, broker, m); // done entries too: their keys join the window
          if (done.has(m.queueOffset)) continue;
          if (copy) {
            dropped.push({ k: 'done', broker, offset: m.queueOffset });
            continue;
          }
          const message = decodeMessage(m);
          if (message instanceof Unreadable) this.skipUnreadable(held, m, message);
          const target = message instanceof Unreadable ? undefined : deliveryTarget(held.clientId, record.subscriptions, message);
          if (message instanceof Unreadable || !target) {
            dropped.push({ k: 'done', broker, offset: m.queueOffset });
            continue;
          }
          const seq = this.remember(held, broker, m.queueOffset);
          entries.push({
            seq,
            packetId: packetIdAt(broker, m.queueOffset),
            message,
            qos: target.qos,
            subscriptionIds: target.subscriptionIds,
            retainAsPublished: target.retainAsPublished,
            state: pubrec.has(m.queueOffset) ? 'pubrec' : 'queued',
            ...(target.sharedFilter !== undefined ? { shareGroup: target.sharedFilter } : {}),
          });
        }
        if (result.nextBeginOffset <= next && result.status !== 'FOUND') break;
        next = Math.max(next + (result.messages.length > 0 ? 0 : 1), result.nextBeginOffset);
      }
      if (dropped.length > 0) void this.commitChanges(held, dropped).catch(() => undefined);
      this.followInbox(held, queue, next);
    }
    return entries;
  }

  /**
   * The UNIQ_KEYs of the entries just before `floor`: a second copy of a SEND whose first copy was
   * acknowledged under an earlier owner is then still recognised (a retried SEND, a downlink
   * message published by two nodes). Bounded: DEDUPE_PREREAD entries, a few pulls per CONNECT.
   */
  private async preReadKeys(held: HeldSession, queue: MessageQueue, floor: number): Promise<void> {
    if (floor === 0) return;
    let from = Math.max(floor - DEDUPE_PREREAD, await this.mq.getMinOffset(queue));
    while (from < floor) {
      const result = await this.mq.pull(queue, from, { maxMessages: READ_BATCH });
      for (const m of result.messages) if (m.queueOffset >= from && m.queueOffset < floor) this.seenBefore(held, queue.brokerName, m);
      if (result.nextBeginOffset <= from) break;
      from = result.nextBeginOffset;
    }
  }

  private followInbox(held: HeldSession, queue: MessageQueue, from: number): void {
    const tail = new QueueTail(this.mq, queue, from, {
      suspendMs: LONG_POLL_MS,
      maxMessages: READ_BATCH,
      onMessages: (messages) => this.onInbox(held, queue.brokerName, messages),
      onError: (e) => this.readError(`inbox of ${held.clientId}`, e),
    });
    held.inboxTails.push(tail);
    tail.start();
  }

  private onInbox(held: HeldSession, broker: string, messages: RocketMessage[]): void {
    if (held.released) return;
    const deliveries: StoredDelivery[] = [];
    for (const m of messages) {
      const message = decodeMessage(m);
      const seq = this.remember(held, broker, m.queueOffset);
      if (this.seenBefore(held, broker, m)) {
        void this.commit([{ op: 'dequeue', clientId: held.clientId, seq }]).catch(() => undefined);
        continue;
      }
      if (message instanceof Unreadable) {
        this.skipUnreadable(held, m, message);
        void this.commit([{ op: 'dequeue', clientId: held.clientId, seq }]).catch(() => undefined);
        continue;
      }
      deliveries.push({ seq, packetId: packetIdAt(broker, m.queueOffset), message });
    }
    if (deliveries.length > 0) this.listener?.deliver(held.clientId, deliveries);
  }

  /** Logged once per message with its id (it is acknowledged, so never read again) and counted. */
  private skipUnreadable(held: HeldSession, m: RocketMessage, why: Unreadable): void {
    this.options.log.warn({ clientId: held.clientId, msgId: m.uniqKey ?? m.offsetMsgId, offsetMsgId: m.offsetMsgId, topic: m.topic, reason: why.reason }, 'unreadable message in an inbox skipped');
    this.listener?.unreadable('inbox');
  }

  /**
   * A second copy of a SEND that was retried after a timeout has the first one's UNIQ_KEY: the
   * reader drops it. It remembers the keys of the last DEDUPE_WINDOW entries it read per inbox
   * instance, and a reader that opens a session reads DEDUPE_PREREAD entries before its start for
   * their keys (preReadKeys).
   */
  private seenBefore(held: HeldSession, broker: string, m: RocketMessage): boolean {
    if (m.uniqKey === undefined) return false;
    let window = held.recentKeys.get(broker);
    if (!window) held.recentKeys.set(broker, (window = { keys: new Set(), order: [] }));
    if (window.keys.has(m.uniqKey)) return true;
    window.keys.add(m.uniqKey);
    window.order.push(m.uniqKey);
    if (window.order.length > DEDUPE_WINDOW) window.keys.delete(window.order.shift()!);
    return false;
  }

  private remember(held: HeldSession, broker: string, offset: number): number {
    // One sequence for the whole node: a sequence the core still holds from an earlier claim of
    // the session never names a position of a later one.
    const seq = this.nextSeq++;
    held.positions.set(seq, { broker, offset });
    return seq;
  }

  // ---- writing ------------------------------------------------------------------------------

  private async write(ops: StoreOp[]): Promise<void> {
    try {
      await this.apply(ops);
    } catch (e) {
      if (e instanceof StoreError) throw e;
      throw new StoreError('unavailable', `RocketMQ write failed: ${(e as Error).message}`);
    }
  }

  private async apply(ops: StoreOp[]): Promise<void> {
    const changes = new Map<string, Change[]>();
    const change = (clientId: string, c: Change): void => {
      const list = changes.get(clientId) ?? [];
      list.push(c);
      changes.set(clientId, list);
    };
    const writes: Promise<unknown>[] = [];
    let qos2: { clientId: string; packetId: number } | undefined;
    for (const op of ops) if (op.op === 'putInboundQos2') qos2 = { clientId: op.clientId, packetId: op.packetId };

    for (const op of ops) {
      switch (op.op) {
        case 'publish':
          writes.push(this.publish(op.message, op.clientIds, qos2 && this.held.get(qos2.clientId) ? qos2 : undefined));
          break;
        case 'putRetained':
          writes.push(this.writeRetained(op.message.topic, op.message));
          break;
        case 'deleteRetained':
          writes.push(this.writeRetained(op.topic, undefined));
          break;
        case 'putSession':
        case 'deleteSession': {
          const clientId = op.op === 'putSession' ? op.record.clientId : op.clientId;
          const target = this.held.get(clientId);
          if (!target) break;
          const record = op.op === 'putSession' ? op.record : null;
          const fresh = record !== null && target.state.record === null;
          const incarnation = fresh ? randomUUID().slice(0, 8) : record === null ? '' : target.state.incarnation;
          change(clientId, { k: 'record', record, incarnation });
          writes.push(this.writeIndex(target, record, incarnation));
          break;
        }
        case 'dequeue':
        case 'setDeliveryState': {
          const target = this.held.get(op.clientId);
          const position = target?.positions.get(op.seq);
          if (!target || !position) break;
          if (op.op === 'dequeue') {
            target.positions.delete(op.seq);
            if (!target.state.record || target.state.record.expiryInterval === 0) break; // ends with its connection
            change(op.clientId, { k: 'done', ...position });
          } else change(op.clientId, { k: 'pubrec', ...position });
          break;
        }
        case 'putInboundQos2':
          break; // stored with the message (publish above)
        case 'deleteInboundQos2':
          change(op.clientId, { k: 'released', packetId: op.packetId });
          break;
        case 'enqueue':
          break; // never issued: this store delivers through itself
      }
    }
    for (const [clientId, list] of changes) {
      const target = this.held.get(clientId);
      if (target) writes.push(this.commitChanges(target, list));
    }
    await Promise.all(writes);
  }

  /**
   * Session changes go out in batches: every change of every session homed on one broker that
   * arrives while that broker's previous batch is in flight goes into the next one, a single SEND
   * dispatched to all their logs. A session's changes keep their order (one batch in flight per
   * broker). Resolves once the batch holding them is stored; then this node's view has them too.
   */
  private commitChanges(held: HeldSession, changes: Change[]): Promise<void> {
    if (held.released) return Promise.resolve();
    const broker = held.log.brokerName;
    let batch = this.nextBatch.get(broker);
    if (!batch) {
      batch = { parts: new Map(), done: undefined as unknown as Promise<void> };
      const pending = batch;
      pending.done = (this.batchInFlight.get(broker) ?? Promise.resolve()).then(() => this.sendBatch(broker, pending));
      this.nextBatch.set(broker, pending);
      this.batchInFlight.set(broker, pending.done.catch(() => undefined));
    }
    const part = batch.parts.get(held.clientId) ?? { held, changes: [] };
    part.changes.push(...changes);
    batch.parts.set(held.clientId, part);
    return batch.done;
  }

  private readonly nextBatch = new Map<string, ChangeBatch>();
  private readonly batchInFlight = new Map<string, Promise<void>>();

  private async sendBatch(broker: string, batch: ChangeBatch): Promise<void> {
    if (this.nextBatch.get(broker) === batch) this.nextBatch.delete(broker); // later changes: the next batch
    const parts = [...batch.parts.values()].filter((p) => !p.held.released);
    const written = parts.filter((p) => p.changes.length > 0); // an empty part only asks for a snapshot
    const queue: MessageQueue = { topic: this.names.logs, queueId: 0, brokerName: broker };
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < written.length; i += DISPATCH_CHUNK) {
      const chunk = written.slice(i, i + DISPATCH_CHUNK);
      const record: LogRecord = { t: 'batch', parts: chunk.map((p) => ({ clientId: p.held.clientId, e: p.held.epoch, c: p.changes })) };
      const logs = chunk.map((p) => this.names.sessionLog(p.held.clientId));
      sends.push(this.mq.sendToLmqs({ topic: this.names.logs, body: encodeRecord(record), tags: 'batch' }, logs, { queue, resolveLmqOffsets: false }));
    }
    await Promise.all(sends);
    for (const part of parts) await this.changesStored(part.held, part.changes);
  }

  /** The changes are in the session log: apply them to this node's view of the session. */
  private async changesStored(held: HeldSession, changes: Change[]): Promise<void> {
    const fold = new SessionLogFold(held.clientId);
    fold.state = held.state;
    fold.active = held.epoch;
    fold.claims = held.epoch;
    fold.apply({ t: 'change', e: held.epoch, c: changes });
    const restart = changes.some((c) => c.k === 'record' && c.record !== null && c.incarnation !== '' && held.inboxTails.length === 0);
    if (restart && held.state.record) {
      // A new session (incarnation): its inbox starts empty, read from its beginning.
      for (const broker of this.brokers) this.followInbox(held, { topic: this.names.inbox(held.clientId, held.state.incarnation), queueId: 0, brokerName: broker }, 0);
    }
    if (held.state.record === null) {
      // The session ended: stop reading for it and let it go (not awaited: this runs in its chain).
      this.stopInbox(held);
      void this.letGo(held, false);
      return;
    }
    // Within the batch: no later change of this session can land between the state read here and the snapshot.
    if (++held.changesSinceSnapshot >= this.options.snapshotEvery) {
      // A snapshot that fails costs only reading: the changes are stored; the next change retries it.
      await this.writeSnapshot(held).catch((e: Error) => {
        held.snapshotAt = 0;
        this.options.log.warn({ clientId: held.clientId, err: e.message }, 'session snapshot not written; retrying');
      });
    }
  }

  /**
   * Snapshots older than `snapshotRenewMs` are written again, in the session's change batch (no
   * change of it can land between the state read and the snapshot). Also dispatched to this
   * node's log, which must keep listing the session for as long as this node holds it.
   */
  private renewSnapshots(): void {
    if (this.closed || !this.membership.leaseValid()) return;
    const due = Date.now() - this.options.snapshotRenewMs;
    for (const held of this.held.values()) {
      if (held.released || held.state.record === null || held.snapshotAt > due) continue;
      held.snapshotAt = Date.now(); // not asked again while this one is in flight
      held.changesSinceSnapshot = this.options.snapshotEvery;
      void this.commitChanges(held, []).catch((e: Error) => {
        held.snapshotAt = 0;
        this.options.log.warn({ clientId: held.clientId, err: e.message }, 'session snapshot not renewed; retrying');
      });
    }
  }

  private async writeSnapshot(held: HeldSession): Promise<void> {
    held.changesSinceSnapshot = 0;
    held.snapshotAt = Date.now();
    const logName = this.names.sessionLog(held.clientId);
    const record: LogRecord = { t: 'snapshot', e: held.epoch, node: this.membership.nodeKey, state: held.state, clientId: held.clientId };
    const nodeLog = this.names.nodeLog(this.options.nodeId);
    const sent = await this.mq.sendToLmqs({ topic: this.names.logs, body: encodeRecord(record), tags: 'snapshot' }, [logName, nodeLog], { queue: held.log });
    const offset = sent.lmqOffsets.get(logName)!;
    void this.mq.updateConsumerOffset(logName, { topic: logName, queueId: 0, brokerName: held.log.brokerName }, offset).catch(() => undefined);
  }

  private stopInbox(held: HeldSession): void {
    for (const tail of held.inboxTails.splice(0)) void tail.stop();
    held.positions.clear();
  }

  /**
   * One SEND per PUBLISH, indexed into every recipient's inbox (and the QoS 2 publisher's log), to
   * the topic of the first uplink route that matches. A message that no route wants and nobody
   * receives is not sent.
   */
  private async publish(message: Message, clientIds: string[], qos2: { clientId: string; packetId: number } | undefined): Promise<void> {
    const encoded = encodeMessage(message);
    const inboxes = [...new Set(clientIds.map((id) => this.inboxOf.get(id)).filter((x): x is string => x !== undefined))];
    const route = this.fromDownlink.has(message) ? undefined : this.options.uplink.find((r) => topicMatches(r.filter, message.topic));
    if (!route && inboxes.length === 0 && !qos2) return;
    const topic = route?.topic || this.names.messages;
    if (route?.tag) encoded.tags = route.tag;
    const queue = this.homeQueue(topic, message.publisherId);
    const properties = { ...encoded.properties };
    const extra: string[] = [];
    if (qos2) {
      const publisher = this.held.get(qos2.clientId)!;
      properties[QOS2_EPOCH] = String(publisher.epoch);
      properties[QOS2_PACKET_ID] = String(qos2.packetId);
      extra.push(this.names.sessionLog(qos2.clientId));
    }
    // The same UNIQ_KEY on every attempt: a SEND that timed out may have been stored, and the
    // retry's copy is then recognised and dropped by the readers.
    let uniqKey = this.uniqKeys.get(message);
    if (uniqKey === undefined) this.uniqKeys.set(message, (uniqKey = createUniqKey()));
    const outgoing = { topic, body: encoded.body, tags: encoded.tags, keys: encoded.keys, properties, uniqKey };
    const chunks: string[][] = [];
    const all = [...extra, ...inboxes];
    for (let i = 0; i < all.length; i += DISPATCH_CHUNK) chunks.push(all.slice(i, i + DISPATCH_CHUNK));
    if (chunks.length === 0) {
      await this.mq.send(outgoing, { queue });
      return;
    }
    // A fan-out beyond one SEND's property limit is several SENDs of the same message.
    await Promise.all(chunks.map((lmqs) => this.mq.sendToLmqs(outgoing, lmqs, { queue, resolveLmqOffsets: false })));
  }

  /**
   * Retained writes of one topic go out one after the other, in call order: SENDs in flight
   * together may be stored in another order (the broker handles them on several threads), and
   * the last one stored is the one every node keeps.
   */
  private writeRetained(topic: string, message: Message | undefined): Promise<void> {
    const previous = this.retainedWrites.get(topic);
    const write = previous ? previous.then(() => this.sendRetained(topic, message)) : this.sendRetained(topic, message);
    const settled = write.catch(() => undefined);
    this.retainedWrites.set(topic, settled);
    void settled.then(() => {
      if (this.retainedWrites.get(topic) === settled) this.retainedWrites.delete(topic);
    });
    return write;
  }

  private async sendRetained(topic: string, message: Message | undefined): Promise<void> {
    const key = digest(topic);
    const queues = this.retainedTails.map((t) => t.queue);
    const queue = queues[parseInt(key.slice(0, 8), 16) % queues.length]!;
    let sent;
    if (message) {
      const encoded = encodeMessage(message);
      sent = await this.mq.send({ topic: this.names.retained, body: encoded.body, tags: encoded.tags, keys: [key], properties: encoded.properties }, { queue });
    } else {
      sent = await this.mq.send({ topic: this.names.retained, body: Buffer.alloc(0), keys: [key], properties: { mqtt_topic_digest: key } }, { queue });
    }
    // Acknowledge only once this node reads it back: from then on every node's barrier includes it.
    await this.retainedTails.find((t) => t.queue.brokerName === queue.brokerName)!.reached(sent.queueOffset);
  }

  /** Index records for the subscriptions that changed; waits until they are read back. */
  private async writeIndex(held: HeldSession, record: SessionRecord | null, incarnation: string): Promise<void> {
    const inbox = incarnation ? this.names.inbox(held.clientId, incarnation) : '';
    const wanted = new Map((record?.subscriptions ?? []).map((s) => [s.filter, s]));
    const sends: Promise<{ queue: MessageQueue; queueOffset: number }>[] = [];
    const queue = this.homeQueue(this.names.subscriptions, held.clientId);
    const previousInbox = this.inboxOf.get(held.clientId);
    for (const [filter, sub] of wanted) {
      const before = held.indexed.get(filter);
      if (before && previousInbox === inbox && JSON.stringify(before) === JSON.stringify(sub)) continue;
      const body: IndexRecordBody = { clientId: held.clientId, filter, inbox, sub };
      sends.push(this.mq.send({ topic: this.names.subscriptions, body: JSON.stringify(body), keys: [indexKey(held.clientId, filter)] }, { queue }));
    }
    for (const filter of held.indexed.keys()) {
      if (wanted.has(filter)) continue;
      sends.push(this.mq.send({ topic: this.names.subscriptions, body: Buffer.alloc(0), keys: [indexKey(held.clientId, filter)] }, { queue }));
    }
    held.indexed = wanted;
    const results = await Promise.all(sends);
    await Promise.all(results.map((r) => this.indexTails.find((t) => t.queue.brokerName === r.queue.brokerName)!.reached(r.queueOffset)));
  }

  // ---- following the index and the retained messages ----------------------------------------

  private onIndex(messages: RocketMessage[]): void {
    this.foldCompacted<IndexRecordBody>(
      messages,
      this.indexByKey,
      (m) => {
        try {
          return JSON.parse(m.body.toString('utf8')) as IndexRecordBody;
        } catch {
          this.options.log.warn({ msgId: m.uniqKey }, 'unreadable subscription record skipped');
          return undefined;
        }
      },
      (record, present) => {
        if (present) this.inboxOf.set(record.clientId, record.inbox);
        this.listener?.routeChanged(record.clientId, record.filter, present ? record.sub : undefined);
      },
    );
  }

  private onRetained(messages: RocketMessage[]): void {
    const decode = (m: RocketMessage): Message | undefined => {
      const message = decodeMessage(m);
      if (!(message instanceof Unreadable)) return message;
      this.options.log.warn({ msgId: m.uniqKey ?? m.offsetMsgId, offsetMsgId: m.offsetMsgId, reason: message.reason }, 'unreadable retained message skipped');
      return undefined;
    };
    this.foldCompacted<Message>(messages, this.retainedByKey, decode, (message, present) =>
      this.listener?.retainedChanged(message.topic, present ? message : undefined),
    );
  }

  /**
   * Reads a compacted topic: the last record per KEYS wins and an empty body removes it.
   * RocketMQ compacts only every ~15 min, so the reader folds it itself.
   */
  private foldCompacted<T>(
    messages: RocketMessage[],
    latest: Map<string, T>,
    decode: (m: RocketMessage) => T | undefined,
    apply: (value: T, present: boolean) => void,
  ): void {
    for (const m of messages) {
      const key = m.keys[0];
      if (!key) continue;
      if (m.body.length === 0) {
        const removed = latest.get(key);
        if (removed === undefined) continue;
        latest.delete(key);
        apply(removed, false);
        continue;
      }
      const value = decode(m);
      if (value === undefined) continue;
      latest.set(key, value);
      apply(value, true);
    }
  }

  // ---- takeover signals ------------------------------------------------------------------------

  private onSignal(signal: { t: 'takeover'; clientId: string; epoch: number }): void {
    const held = this.held.get(signal.clientId);
    if (!held || held.epoch >= signal.epoch) return;
    void this.letGo(held, true);
  }

  /** Hands the session over: closes its connection here, finishes its writes, writes the handoff. */
  private async letGo(held: HeldSession, tellCore: boolean): Promise<void> {
    if (held.released) return;
    held.released = true;
    if (tellCore) this.listener?.release(held.clientId);
    this.held.delete(held.clientId);
    this.stopInbox(held);
    await held.chain;
    const logName = this.names.sessionLog(held.clientId);
    const record: LogRecord = { t: 'handoff', e: held.epoch, node: this.membership.nodeKey, clientId: held.clientId };
    const nodeLog = this.names.nodeLog(this.options.nodeId);
    await this.mq
      .sendToLmqs({ topic: this.names.logs, body: encodeRecord(record), tags: 'handoff' }, [logName, nodeLog], { queue: held.log, resolveLmqOffsets: false })
      .catch((e: Error) => this.options.log.warn({ clientId: held.clientId, err: e.message }, 'handoff not written; the next owner waits for this node\'s lease'));
    this.options.log.debug({ clientId: held.clientId, epoch: held.epoch }, 'session handed over');
  }

  // ---- sessions of dead nodes (docs/cluster.md §8) -------------------------------------------

  /**
   * Every node id that ever ran is in the members topic. For each whose current incarnation is
   * dead, the sessions it held are taken over, each by the live node that rendezvous hashing of
   * its client id picks: their wills and expiry run there from then on.
   */
  private async lookAfterDeadNodes(): Promise<void> {
    if (this.lookingAfter || this.closed || !this.membership.leaseValid()) return;
    this.lookingAfter = true;
    try {
      for (const m of await this.readNew(await this.mq.getSubscribeQueues(this.names.members), this.membersRead)) {
        try {
          const nodeId = String((JSON.parse(m.body.toString('utf8')) as { nodeId: unknown }).nodeId);
          if (!this.nodeLogs.has(nodeId)) this.nodeLogs.set(nodeId, { next: new Map(), held: new Map() });
        } catch {
          continue;
        }
      }
      for (const [nodeId, nodeLog] of this.nodeLogs) {
        const queues = this.brokers.map((brokerName) => ({ topic: this.names.nodeLog(nodeId), queueId: 0, brokerName }));
        for (const m of await this.readNew(queues, nodeLog.next)) {
          const record = decodeRecord(m.body);
          if (record) trackHeld(nodeLog.held, record);
        }
        for (const [clientId, nodeKey] of nodeLog.held) {
          if (nodeKey === this.membership.nodeKey || !this.membership.isDead(nodeKey) || this.held.has(clientId) || this.claiming.has(clientId)) continue;
          if (this.membership.responsibleFor(clientId) !== this.membership.nodeKey) continue;
          await this.adoptOrphan(clientId, nodeKey).then(
            (adopted) => {
              if (!adopted) nodeLog.held.delete(clientId); // it moved on: nothing to look after
            },
            (e: Error) =>
              this.options.log.warn({ clientId, deadNode: nodeKey, err: e.message }, 'session of a dead node not taken over yet; retrying'),
          );
        }
      }
    } catch (e) {
      this.readError('dead nodes', e as Error);
    } finally {
      this.lookingAfter = false;
    }
  }

  /** Takes over one session of a dead node, unless it moved on meanwhile (then false). */
  private async adoptOrphan(clientId: string, deadNode: string): Promise<boolean> {
    const log = this.homeQueue(this.names.logs, clientId);
    const logQueue: MessageQueue = { topic: this.names.sessionLog(clientId), queueId: 0, brokerName: log.brokerName };
    const end = (await this.mq.getMaxOffset(logQueue)) - 1;
    const { fold } = await this.readLog(clientId, logQueue, end);
    if (fold.activeNode !== deadNode || fold.handedOff) return false; // reconnected elsewhere, or let go
    if (this.claiming.has(clientId) || this.held.has(clientId)) return false; // a CONNECT here got there first
    let loaded: LoadedSession | undefined;
    try {
      loaded = await this.claim(clientId, deadNode);
    } catch (e) {
      if (e instanceof ClaimLost) return false; // someone else owns it now
      throw e;
    }
    this.options.log.info({ clientId, deadNode }, 'took over the session of a dead node');
    if (loaded) this.listener?.adopt(loaded);
    else await this.letGo(this.held.get(clientId)!, false);
    return true;
  }

  /** What the queues hold beyond the offsets in `next` (by broker), which move on. */
  private async readNew(queues: MessageQueue[], next: Map<string, number>): Promise<RocketMessage[]> {
    const out: RocketMessage[] = [];
    for (const queue of queues) {
      const read = await readQueue(this.mq, queue, next.get(queue.brokerName) ?? 0, READ_BATCH);
      out.push(...read.messages);
      next.set(queue.brokerName, read.next);
    }
    return out;
  }

  // ---- helpers --------------------------------------------------------------------------------

  /** The queue of `topic` on the home broker of `key` (rendezvous hashing over the brokers). */
  private homeQueue(topic: string, key: string): MessageQueue {
    let best = this.brokers[0]!;
    let bestScore = '';
    for (const broker of this.brokers) {
      const score = digest(`${broker}\n${key}`);
      if (score > bestScore) {
        best = broker;
        bestScore = score;
      }
    }
    const queues = this.dataTopics.has(topic) ? this.options.messageQueues : 1;
    const queueId = queues > 1 ? parseInt(digest(key).slice(0, 8), 16) % queues : 0;
    return { topic, queueId, brokerName: best };
  }

  private assertServing(): void {
    if (this.closed) throw new StoreError('closed', 'store is closed');
    if (!this.membership.leaseValid()) throw new StoreError('unavailable', 'this node has no valid lease: RocketMQ unreachable');
  }

  private lastReadError = 0;
  private readError(what: string, e: Error): void {
    const now = Date.now();
    if (now - this.lastReadError < 5000) return;
    this.lastReadError = now;
    this.options.log.warn({ err: e.message, what }, 'RocketMQ read failed; retrying (log rate-limited)');
  }
}

/** A later claim came first: this one cannot become the owner. */
class ClaimLost extends StoreError {
  constructor(clientId: string) {
    super('unavailable', `session ${clientId} was claimed again meanwhile`);
  }
}

/** Session changes waiting for their SEND, by client id. */
interface ChangeBatch {
  parts: Map<string, { held: HeldSession; changes: Change[] }>;
  done: Promise<void>;
}

function indexKey(clientId: string, filter: string): string {
  return `${digest(clientId)}${digest(filter)}`;
}

/** The session whose writes a batch belongs to: they are ordered per session. */
function primaryClient(ops: StoreOp[]): string | undefined {
  for (const op of ops) {
    switch (op.op) {
      case 'publish':
        return op.message.publisherId;
      case 'putSession':
        return op.record.clientId;
      case 'putRetained':
      case 'deleteRetained':
        continue;
      default:
        return op.clientId;
    }
  }
  return undefined;
}
