// Node leases and signals between nodes (docs/cluster.md §8), both through RocketMQ.
import { randomUUID } from 'node:crypto';
import type { Message as RocketMessage, MessageQueue, RocketMQClient } from '../rocketmq';
import type { ClusterLog } from './cluster-store';
import { type ClusterNames, digest } from './names';
import { QueueTail } from './queue-tail';

/** What one node asks of another. */
export type Signal = { t: 'takeover'; clientId: string; epoch: number };

interface Heartbeat {
  node: string;
  /** Where the node's admin API answers, for the cluster-wide view (docs/admin-api.md). */
  admin?: string;
}

/** A live node and where its admin API answers, if it has one. */
export interface LiveNode {
  node: string;
  admin?: string;
}

/** How long before its lease ends a node stops acknowledging, for clock-rate differences and RocketMQ's reput lag. */
const LEASE_MARGIN_FRACTION = 0.2;

/**
 * This node's lease, everyone else's liveness, and this node's mailbox.
 * A node is `nodeId/incarnation`: a restarted node is a new one, and the old one is dead at once.
 */
export class Membership {
  readonly incarnation = randomUUID().slice(0, 8);
  readonly nodeKey: string;
  private readonly lastSeen = new Map<string, number>();
  private readonly admins = new Map<string, string>();
  private adminUrl: string | undefined;
  /** Incarnation last seen per node id: an older incarnation of a node is dead. */
  private readonly currentIncarnation = new Map<string, string>();
  private tails: QueueTail[] = [];
  private signalTails: QueueTail[] = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;
  /** Start time of the last heartbeat that was stored. */
  private lastHeartbeatStart = 0;
  private brokers: string[] = [];
  private started = 0;
  private stopped = false;

  constructor(
    private readonly mq: RocketMQClient,
    private readonly names: ClusterNames,
    readonly nodeId: string,
    readonly leaseMs: number,
    private readonly log: ClusterLog,
    private readonly onSignal: (signal: Signal) => void,
  ) {
    this.nodeKey = `${nodeId}/${this.incarnation}`;
  }

  async start(brokers: string[]): Promise<void> {
    this.brokers = brokers;
    this.started = Date.now();
    for (const brokerName of brokers) {
      const queue: MessageQueue = { topic: this.names.nodes, queueId: 0, brokerName };
      const from = await this.mq.getMaxOffset(queue);
      this.tails.push(this.follow(queue, from, (messages) => this.onHeartbeats(messages)));
    }
    const mailbox = this.names.nodeLog(this.nodeId);
    for (const brokerName of brokers) {
      const queue: MessageQueue = { topic: mailbox, queueId: 0, brokerName };
      const from = await this.mq.getMaxOffset(queue);
      this.signalTails.push(this.follow(queue, from, (messages) => this.onSignals(messages)));
    }
    await this.heartbeat();
    if (!this.leaseValid()) throw new Error('could not write the first heartbeat to RocketMQ');
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), Math.max(50, Math.floor(this.leaseMs / 3)));
    this.heartbeatTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    await Promise.all([...this.tails, ...this.signalTails].map((t) => t.stop()));
  }

  /** True while others cannot consider this node dead yet: it may acknowledge. */
  leaseValid(): boolean {
    return !this.stopped && Date.now() - this.lastHeartbeatStart < this.leaseMs * (1 - LEASE_MARGIN_FRACTION);
  }

  /**
   * Whether `nodeKey` is dead: no heartbeat seen for a lease while this node's own reading of
   * the heartbeats kept working (after an outage of RocketMQ, nobody is declared dead at once).
   */
  isDead(nodeKey: string): boolean {
    if (nodeKey === this.nodeKey) return false;
    const [nodeId, incarnation] = nodeKey.split('/');
    const current = this.currentIncarnation.get(nodeId ?? '');
    if (current !== undefined && current !== incarnation) return true; // restarted: the old one is gone
    if (!this.settled()) return false;
    const now = Date.now();
    const seen = this.lastSeen.get(nodeKey);
    return seen === undefined || now - seen > this.leaseMs;
  }

  /**
   * True once this node has read every heartbeat for a whole lease without a break: its view of
   * who is alive is complete (before that, a live node may not have been seen yet).
   */
  settled(): boolean {
    const now = Date.now();
    const watchingSince = Math.max(this.started, ...this.tails.map((t) => t.healthySince ?? now));
    return now - watchingSince >= this.leaseMs;
  }

  /** Sent with the next heartbeats: the address of this node's admin API. */
  advertiseAdmin(url: string): void {
    this.adminUrl = url;
    void this.heartbeat();
  }

  /** The nodes heard from within a lease, this one first. */
  liveNodes(): LiveNode[] {
    const now = Date.now();
    const out: LiveNode[] = [{ node: this.nodeKey, admin: this.adminUrl }];
    for (const [nodeKey, seen] of this.lastSeen) {
      if (nodeKey === this.nodeKey || now - seen > this.leaseMs) continue;
      const [nodeId, incarnation] = nodeKey.split('/');
      if (this.currentIncarnation.get(nodeId ?? '') !== incarnation) continue;
      out.push({ node: nodeKey, admin: this.admins.get(nodeKey) });
    }
    return out;
  }

  /** The live node (this one included) that looks after `clientId` when its node is gone: rendezvous hashing. */
  responsibleFor(clientId: string): string {
    let best = this.nodeKey;
    let bestScore = digest(`${this.nodeKey}\n${clientId}`);
    for (const nodeKey of this.lastSeen.keys()) {
      if (this.isDead(nodeKey)) continue;
      const score = digest(`${nodeKey}\n${clientId}`);
      if (score > bestScore) {
        best = nodeKey;
        bestScore = score;
      }
    }
    return best;
  }

  /** Sends a signal to the node that holds `nodeKey`'s mailbox (on every broker it may read). */
  async signal(nodeKey: string, signal: Signal): Promise<void> {
    const nodeId = nodeKey.split('/')[0] ?? nodeKey;
    const mailbox = this.names.nodeLog(nodeId);
    await this.onAnyBroker((brokerName) =>
      this.mq.sendToLmqs({ topic: this.names.logs, body: JSON.stringify(signal), tags: 'signal' }, [mailbox], {
        queue: { topic: this.names.logs, queueId: 0, brokerName },
        resolveLmqOffsets: false,
      }),
    );
  }

  /** Tries the brokers in turn, starting with the next one each call: one that is down is skipped. */
  private async onAnyBroker(send: (brokerName: string) => Promise<unknown>): Promise<void> {
    const first = this.rotation++;
    let error: Error | undefined;
    for (let i = 0; i < this.brokers.length; i++) {
      try {
        await send(this.brokers[(first + i) % this.brokers.length]!);
        return;
      } catch (e) {
        error = e as Error;
      }
    }
    throw error ?? new Error('no RocketMQ broker');
  }

  private rotation = 0;

  private async heartbeat(): Promise<void> {
    if (this.stopped) return;
    const startedAt = Date.now();
    const body: Heartbeat = { node: this.nodeKey, admin: this.adminUrl };
    try {
      await this.onAnyBroker((brokerName) =>
        this.mq.send({ topic: this.names.nodes, body: JSON.stringify(body), tags: 'heartbeat' }, { queue: { topic: this.names.nodes, queueId: 0, brokerName } }),
      );
      this.lastHeartbeatStart = Math.max(this.lastHeartbeatStart, startedAt);
    } catch (e) {
      this.log.warn({ err: (e as Error).message, leaseValid: this.leaseValid() }, 'heartbeat not stored');
    }
  }

  private onHeartbeats(messages: RocketMessage[]): void {
    const now = Date.now();
    for (const m of messages) {
      let heartbeat: Heartbeat;
      try {
        heartbeat = JSON.parse(m.body.toString('utf8')) as Heartbeat;
      } catch {
        continue;
      }
      if (typeof heartbeat.node !== 'string') continue;
      this.lastSeen.set(heartbeat.node, now);
      if (typeof heartbeat.admin === 'string') this.admins.set(heartbeat.node, heartbeat.admin);
      const [nodeId, incarnation] = heartbeat.node.split('/');
      if (nodeId !== undefined && incarnation !== undefined) this.currentIncarnation.set(nodeId, incarnation);
    }
  }

  private onSignals(messages: RocketMessage[]): void {
    for (const m of messages) {
      try {
        const signal = JSON.parse(m.body.toString('utf8')) as Signal;
        if (signal.t === 'takeover' && typeof signal.clientId === 'string') this.onSignal(signal);
      } catch {
        this.log.warn({ msgId: m.uniqKey }, 'unreadable signal skipped');
      }
    }
  }

  private follow(queue: MessageQueue, from: number, onMessages: (messages: RocketMessage[]) => void): QueueTail {
    const tail = new QueueTail(this.mq, queue, from, {
      suspendMs: Math.max(100, Math.min(5000, Math.floor(this.leaseMs / 3))),
      maxMessages: 32,
      onMessages,
    });
    tail.start();
    return tail;
  }
}
