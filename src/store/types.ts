import type { ProtocolVersion, QoS, UserProperties } from '../protocol/packets';

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
  seq: number;
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
  | { op: 'deleteRetained'; topic: string };

/**
 * What the broker core needs from durable storage. The embedded (LMDB) store and,
 * later, the RocketMQ store implement it; the broker never knows which it has.
 *
 * Contract:
 * - `commit` applies a batch atomically, and batches take effect in call order.
 *   Its promise resolves only once the batch is durable under the store's mode.
 * - A `commit` of an empty batch resolves after every earlier batch has, so callers
 *   can order acknowledgements without writing anything.
 */
export interface Store {
  readonly kind: string;
  load(): Promise<LoadedState>;
  commit(ops: StoreOp[]): Promise<void>;
  close(): Promise<void>;
}

export class StoreError extends Error {
  constructor(
    readonly reason: 'unavailable' | 'closed' | 'corrupt',
    message: string,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}
