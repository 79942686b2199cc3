// The bridge's downlink (docs/bridge.md): RocketMQ applications send to one topic; the nodes read
// it and publish each message to the MQTT subscribers, as a PUBLISH of no client.
import type { Message as RocketMessage, MessageQueue, RocketMQClient } from '../rocketmq';
import type { Message } from '../store/types';
import type { ClusterLog } from './cluster-store';
import type { Membership } from './membership';
import { Unreadable, decodeMessage } from './message-codec';
import { digest } from './names';

export interface DownlinkOptions {
  topic: string;
  /** Consumer group whose offsets record how far the cluster has published each queue. */
  group: string;
  /** Largest payload delivered (the MQTT packet limit); larger messages are refused. */
  maxPayload: number;
  log: ClusterLog;
  /** Publishes to MQTT; resolves once stored for every recipient. `uniqKey`: the source message's id. */
  publish(message: Message, uniqKey: string): Promise<void>;
  rejected(): void;
}

const READ_BATCH = 32;
const LONG_POLL_MS = 5000;
const OWNERSHIP_CHECK_MS = 1000;

/**
 * Each queue of the downlink topic is read by one live node: the one rendezvous hashing of the
 * queue picks among the live nodes, so a node that dies hands its queues to the others. A node
 * takes queues only once its view of who is alive is settled. Two nodes that briefly both read a
 * queue (views differ for a moment) publish the same messages with the same UNIQ_KEY, and inbox
 * readers drop the second copy (docs/cluster.md §7): one delivery, in order.
 */
export class DownlinkReader {
  private readonly readers = new Map<string, { queue: MessageQueue; running: boolean; done: Promise<void> }>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly mq: RocketMQClient,
    private readonly membership: Membership,
    private readonly options: DownlinkOptions,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.rebalance(), OWNERSHIP_CHECK_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    const readers = [...this.readers.values()];
    for (const r of readers) r.running = false;
    await Promise.all(readers.map((r) => r.done));
  }

  private rebalancing = false;
  private async rebalance(): Promise<void> {
    if (this.rebalancing || this.stopped) return;
    this.rebalancing = true;
    try {
      const mine = this.membership.settled() && this.membership.leaseValid();
      const queues = await this.mq.getSubscribeQueues(this.options.topic);
      for (const queue of queues) {
        const key = `${queue.brokerName}/${queue.queueId}`;
        const owner = mine && this.membership.responsibleFor(`downlink ${this.options.topic} ${key}`) === this.membership.nodeKey;
        const reader = this.readers.get(key);
        if (owner && !reader) {
          const started = { queue, running: true, done: Promise.resolve() };
          started.done = this.read(started);
          this.readers.set(key, started);
          this.options.log.info({ queue: key, topic: this.options.topic }, 'reading a downlink queue');
        } else if (!owner && reader) {
          reader.running = false;
          this.readers.delete(key);
          this.options.log.info({ queue: key, topic: this.options.topic }, 'downlink queue handed to another node');
        }
      }
    } catch (e) {
      this.options.log.warn({ err: (e as Error).message }, 'downlink queues not checked; retrying');
    } finally {
      this.rebalancing = false;
    }
  }

  private async read(reader: { queue: MessageQueue; running: boolean }): Promise<void> {
    const { queue } = reader;
    let failures = 0;
    let next: number | undefined;
    while (reader.running && !this.stopped) {
      try {
        next ??= (await this.mq.queryConsumerOffset(this.options.group, queue)) ?? (await this.mq.getMinOffset(queue));
        const result = await this.mq.pull(queue, next, { maxMessages: READ_BATCH, suspendMs: LONG_POLL_MS });
        if (!reader.running) return;
        for (const m of result.messages) {
          if (m.queueOffset < next) continue;
          await this.publishOne(m, reader);
          if (!reader.running) return; // not committed: the next owner publishes it again, deduplicated
        }
        if (result.nextBeginOffset > next || result.status === 'OFFSET_ILLEGAL') {
          next = result.nextBeginOffset;
          await this.mq.updateConsumerOffset(this.options.group, queue, next);
        }
        failures = 0;
      } catch (e) {
        failures++;
        if (failures === 1 || failures % 20 === 0) this.options.log.warn({ err: (e as Error).message, queue: `${queue.brokerName}/${queue.queueId}` }, 'downlink read failed; retrying');
        await sleep(Math.min(100 * 2 ** Math.min(failures, 5), 2000));
      }
    }
  }

  /** Publishes one message, retrying until it is stored: a downlink message is never skipped for a store failure. */
  private async publishOne(m: RocketMessage, reader: { running: boolean }): Promise<void> {
    const message = decodeMessage(m, { downlink: true });
    const id = m.uniqKey ?? m.offsetMsgId;
    const refuse = (reason: string): void => {
      this.options.log.warn({ msgId: id, topic: m.topic, queueOffset: m.queueOffset, reason }, 'downlink message refused');
      this.options.rejected();
    };
    if (message instanceof Unreadable) return refuse(message.reason);
    if (message.payload.length > this.options.maxPayload) return refuse(`payload of ${message.payload.length} bytes is above the limit of ${this.options.maxPayload}`);
    for (let attempt = 1; reader.running && !this.stopped; attempt++) {
      try {
        await this.options.publish(message, digest(`downlink ${id}`)); // the same key on every node that reads it
        return;
      } catch (e) {
        if (attempt === 1 || attempt % 20 === 0) this.options.log.warn({ msgId: id, err: (e as Error).message, attempt }, 'downlink message not stored yet; retrying');
        await sleep(Math.min(100 * 2 ** Math.min(attempt, 5), 2000));
      }
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
