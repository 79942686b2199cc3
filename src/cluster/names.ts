import { createHash } from 'node:crypto';

/**
 * A stable name part for any string (client id, MQTT topic, filter): RocketMQ names allow only
 * `[%|a-zA-Z0-9_-]` and topics at most 127 characters, so user strings never appear in a name.
 * 128 bits of SHA-256, hex (case-insensitive file systems hold the consume queues too).
 */
export function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/** The RocketMQ topics and LMQs of one cluster (docs/cluster.md §2). */
export class ClusterNames {
  /** One message per MQTT PUBLISH; body = the payload. */
  readonly messages: string;
  /** Parent topic of the session logs and node logs (records are dispatched to their LMQs). */
  readonly logs: string;
  /** The subscription index, compacted, keyed by inbox and filter. */
  readonly subscriptions: string;
  /** Retained messages, compacted, keyed by topic. */
  readonly retained: string;
  /** Node heartbeats. */
  readonly nodes: string;
  /** Every node id that ever ran, compacted: whose sessions to look after when it is gone. */
  readonly members: string;
  /** The cluster's recorded set of RocketMQ brokers: whose hash picks a session's home. */
  readonly meta: string;

  constructor(readonly cluster: string) {
    this.messages = `${cluster}_msg`;
    this.logs = `${cluster}_log`;
    this.subscriptions = `${cluster}_subs`;
    this.retained = `${cluster}_retained`;
    this.nodes = `${cluster}_nodes`;
    this.members = `${cluster}_members`;
    this.meta = `${cluster}_meta`;
  }

  /** The log of one session: claims, snapshots, changes, handoffs (on its home broker). */
  sessionLog(clientId: string): string {
    return `%LMQ%${this.cluster}_s_${digest(clientId)}`;
  }

  /** The inbox of one incarnation of a session: an index entry per message routed to it. */
  inbox(clientId: string, incarnation: string): string {
    return `%LMQ%${this.cluster}_q_${digest(clientId)}_${incarnation}`;
  }

  /** The log of one node: signals to it (takeover). */
  nodeLog(nodeId: string): string {
    return `%LMQ%${this.cluster}_n_${digest(nodeId)}`;
  }
}
