import type { ProtocolVersion } from '../protocol/packets';
import type { SessionRecord, StoredSubscription, StoredWill } from '../store/types';
import type { TimerHandle } from './clock';
import { OutboundQueue } from './outbound-queue';

/** Session expiry value meaning "never expires" (MQTT 5 §3.1.2.11.2). */
export const NEVER_EXPIRES = 0xffffffff;

/** The promise of a "received" record that is already durable (loaded from the store). */
export const STORED: Promise<void> = Promise.resolve();

/** The minimal view of a connection that a session needs to hand deliveries over. */
export interface SessionOwner {
  /** Sends what the session has ready, within the client's flow-control window. */
  pump(): void;
  /** Another connection took the session over: close this one (MQTT 5: DISCONNECT 0x8E). */
  takenOver(): void;
  /** An administrator disconnects the client (MQTT 5: DISCONNECT 0x98); its will is published as for any server-side close. */
  kick(): void;
}

/**
 * The state MQTT keeps per client id across connections: subscriptions, the outbound
 * queue with in-flight deliveries, and received QoS 2 packet ids.
 */
export class Session {
  private subscriptionMap: Map<string, StoredSubscription> | undefined;
  private inboundQos2Map: Map<number, Promise<void>> | undefined;
  /** Made on first use, like inboundQos2: an idle connection's session is mostly such empty tables. */
  get subscriptions(): Map<string, StoredSubscription> {
    return (this.subscriptionMap ??= new Map());
  }
  /** The subscriptions without making the table of a session that has none (the admin API lists every session's). */
  get subscriptionFilters(): Iterable<string> {
    return this.subscriptionMap?.keys() ?? [];
  }
  readonly outbound = new OutboundQueue();
  /**
   * QoS 2 packet ids received and not yet released by PUBREL. The promise settles when the
   * "received" record (stored with the message) is durable, or rejects if it could not be stored.
   * It lives here, not on the connection, so that a duplicate arriving on the connection that
   * took the session over still waits for the first commit (G2).
   */
  get inboundQos2(): Map<number, Promise<void>> {
    return (this.inboundQos2Map ??= new Map());
  }
  owner: SessionOwner | null = null;
  will: StoredWill | undefined;
  disconnectedAt: number | undefined;
  nextSeq = 1;
  /** The will timer armed after an ungraceful disconnect. */
  willTimer: TimerHandle | undefined;

  constructor(
    readonly clientId: string,
    public protocolVersion: ProtocolVersion,
    public expiryInterval: number,
  ) {}

  /** A session that must outlive its connection lives in the store. */
  get persistent(): boolean {
    return this.expiryInterval > 0;
  }

  /** Whether the store holds a record of this session (persistent, or holding a will to survive a crash). */
  get stored(): boolean {
    return this.persistent || this.will !== undefined;
  }

  get online(): boolean {
    return this.owner !== null;
  }

  expiresAt(): number | undefined {
    if (this.disconnectedAt === undefined || this.expiryInterval === NEVER_EXPIRES) return undefined;
    return this.disconnectedAt + this.expiryInterval * 1000;
  }

  allocateSeq(): number {
    return this.nextSeq++;
  }

  toRecord(): SessionRecord {
    return {
      clientId: this.clientId,
      protocolVersion: this.protocolVersion,
      expiryInterval: this.expiryInterval,
      subscriptions: [...this.subscriptions.values()],
      will: this.will,
      disconnectedAt: this.disconnectedAt,
    };
  }
}
