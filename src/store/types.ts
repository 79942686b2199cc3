import type { ProtocolVersion, QoS, UserProperties } from '../protocol/packets';
import type { DeliveryTarget } from './delivery';

/** The properties of a PUBLISH that travel with the message (MQTT 5 §3.3.2.3). */
export interface MessageProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: UserProperties;
}

/** An application message as the broker keeps it, independent of any connection. */
export interface Message {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties?: MessageProperties;
  /** Epoch ms after which the message must not be delivered (MQTT 5 message expiry). */
  expiresAt?: number;
  /** Client id of the publisher, for No Local. Empty for broker-made messages. */
  publisherId: string;
  createdAt: number;
  /** Cluster mode: moved once already from a shared-subscription member that left; not moved again. */
  movedFromMember?: boolean;
}

export interface StoredSubscription {
  /** The filter as the client sent it, `$share/...` included. */
  filter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionId?: number;
}

export interface StoredWill {
  message: Message;
  /** Seconds to wait after an ungraceful disconnect (MQTT 5 Will Delay Interval). */
  delayInterval: number;
}

export interface SessionRecord {
  clientId: string;
  protocolVersion: ProtocolVersion;
  /** Seconds the session outlives its connection; 0xFFFFFFFF never expires. */
  expiryInterval: number;
  subscriptions: StoredSubscription[];
  /** Present while the will is pending: from CONNECT until a normal DISCONNECT or publication. */
  will?: StoredWill;
  /** Epoch ms of the disconnect; absent while a connection holds the session. */
  disconnectedAt?: number;
}

export type DeliveryState = 'queued' | 'pubrec';

/** One outbound delivery of a message to one session, keyed by its delivery sequence. */
export interface QueueEntryRecord {
  /** The delivery's place in the session's queue: deliveries are sent in this order. */
  seq: number;
  /**
   * The packet id of the delivery, derived by the store from the delivery's durable position so
   * that it is the same after a crash (G4). Absent: `((seq - 1) mod 65535) + 1`.
   */
  packetId?: number;
  message: Message;
  qos: QoS;
  subscriptionIds: number[];
  retainAsPublished: boolean;
  state: DeliveryState;
  /** Set when the delivery came through a shared subscription `$share/{group}/...`. */
  shareGroup?: string;
}

export interface LoadedSession {
  record: SessionRecord;
  queue: QueueEntryRecord[];
  inboundQos2: number[];
}

export interface LoadedState {
  sessions: LoadedSession[];
  retained: Message[];
}

/** One change to durable state. A batch of them commits atomically. */
export type StoreOp =
  | { op: 'putSession'; record: SessionRecord }
  | { op: 'deleteSession'; clientId: string }
  | { op: 'enqueue'; clientId: string; entry: QueueEntryRecord }
  | { op: 'setDeliveryState'; clientId: string; seq: number; state: DeliveryState }
  | { op: 'dequeue'; clientId: string; seq: number }
  | { op: 'putInboundQos2'; clientId: string; packetId: number }
  | { op: 'deleteInboundQos2'; clientId: string; packetId: number }
  | { op: 'putRetained'; message: Message }
  | { op: 'deleteRetained'; topic: string }
  /**
   * Stores a message for the sessions of `clientIds`, wherever they are held. Only for a store
   * that `deliversThroughStore`: it hands the deliveries back through `StoreListener.deliver`.
   */
  | {
      op: 'publish';
      message: Message;
      clientIds: string[];
      /** How this process's router matched each recipient: a store that hands the delivery back here passes it on. */
      targets?: ReadonlyMap<string, DeliveryTarget>;
    };

/** A message the store hands to a session this node holds, at its durable position. */
export interface StoredDelivery {
  /** Order of the delivery in the session's queue on this node; `dequeue` names it. */
  seq: number;
  packetId: number;
  message: Message;
  /** Set when the store keeps no record of this delivery (a clean session's): it needs no `dequeue`. */
  unrecorded?: true;
  /** The match made when it was published in this process (the op's `targets`): not matched again. */
  target?: DeliveryTarget;
}

/**
 * What a store tells the broker core on its own initiative. In cluster mode that is what other
 * nodes did; the embedded stores, being the only node, never call it after `load`.
 * The broker core implements it; the store knows it only through this interface.
 */
export interface StoreListener {
  /**
   * Hold a session the store claimed for this node without a connection (the session of a dead
   * node, a timer due): its will and expiry run here from now on, as after a restart.
   */
  adopt(session: LoadedSession): void;
  /**
   * Another node took the session over (or the store let it go): close its connection here and
   * forget the session. Its state lives on in the store. `byConnect`: a client connected to it
   * elsewhere, which on one process publishes the old connection's will when it has no delay;
   * otherwise no will.
   */
  release(clientId: string, byConnect?: boolean): void;
  /** Messages for a session this node holds, in order (cluster mode: read from its inbox). */
  deliver(clientId: string, deliveries: StoredDelivery[]): void;
  /** A subscription of any session, added (`sub`) or removed (undefined): the routes to publish to. */
  routeChanged(clientId: string, filter: string, sub: StoredSubscription | undefined): void;
  /** The retained message of `topic` was set (or cleared: undefined) by any node. */
  retainedChanged(topic: string, message: Message | undefined): void;
  /**
   * A stored message that is not an MQTT message (foreign or malformed), in a session's inbox or
   * from a RocketMQ application (the bridge's downlink): skipped and acknowledged by the store,
   * counted here.
   */
  unreadable(source: 'inbox' | 'downlink'): void;
  /**
   * A message from outside MQTT (cluster mode: a RocketMQ application, the bridge's downlink):
   * routed like a PUBLISH of no client. Resolves once it is stored for every recipient.
   */
  bridged(message: Message): Promise<void>;
}

/**
 * What the broker core needs from durable storage. The embedded stores (memory, LMDB) and the
 * cluster store (RocketMQ) implement it; the broker never knows which it has.
 * docs/cluster.md §12 gives the ports' purpose in cluster mode.
 *
 * Contract:
 * - `load` returns the sessions this node holds from the start, and the retained messages.
 *   One process that is the only node holds every stored session; a cluster node none.
 * - `openSession` brings a session this node does not hold: it takes it over from any other
 *   holder (fenced: from then on the other holder's writes no longer count) and returns its
 *   state, or undefined when no session is stored under that client id. The store keeps the
 *   fencing epoch of each session it opened and checks it on every write of that session.
 * - `commit` applies a batch atomically, and batches of one session take effect in call order.
 *   Its promise resolves only once the batch is durable under the store's mode.
 * - A `commit` of an empty batch resolves after every earlier batch has, so callers
 *   can order acknowledgements without writing anything.
 * - `sync` resolves once every subscription and retained message stored anywhere before the
 *   call is visible to this node (cluster mode: the read barrier); undefined when there is
 *   nothing to wait for, so the single-process path stays synchronous.
 */
export interface Store {
  readonly kind: string;
  /**
   * false: the broker core queues deliveries itself when a message is published, to the
   * sessions it holds (one process holds them all). true: it hands the store one `publish` op,
   * and deliveries, routes and retained changes come back through the StoreListener (cluster).
   */
  readonly deliversThroughStore: boolean;
  /**
   * With `deliversThroughStore`: the core queues deliveries to the clean sessions it holds itself,
   * as the embedded stores let it (nothing of them is stored), and hands the store only the other
   * recipients. Set by the store of a worker of several on one machine; cluster mode routes all.
   */
  readonly queuesHeldCleanSessions?: boolean;
  /**
   * With `deliversThroughStore`: a retained message that a SUBSCRIBE of a persistent session gets
   * at QoS > 0 is handed to the store as a `publish` op for that session alone (its `targets`
   * keep the RETAIN flag), so it is stored like any delivery and comes back through `deliver`.
   * Without it the core queues that copy itself, unstored. Set by the store of a worker of several.
   */
  readonly storesRetainedDeliveries?: boolean;
  load(listener: StoreListener): Promise<LoadedState>;
  openSession(clientId: string): Promise<LoadedSession | undefined>;
  sync(): Promise<void> | undefined;
  commit(ops: StoreOp[]): Promise<void>;
  close(): Promise<void>;
}

export class StoreError extends Error {
  constructor(
    /** `full`: the store reached its configured size; writes that add messages are refused until it drains. */
    readonly reason: 'unavailable' | 'closed' | 'corrupt' | 'full',
    message: string,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}
