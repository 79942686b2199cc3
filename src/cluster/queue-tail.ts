import type { Message as RocketMessage, MessageQueue, RocketMQClient } from '../rocketmq';

export interface QueueTailOptions {
  /** Long-poll time of one pull. */
  suspendMs: number;
  maxMessages: number;
  /** Called with each batch in order; the tail waits for it before the next pull. */
  onMessages(messages: RocketMessage[]): void | Promise<void>;
  onError?(error: Error): void;
}

/**
 * Follows one RocketMQ queue (a topic queue or an LMQ instance) from an offset, with long polls,
 * one pull in flight. It knows how far it has read, so callers can wait until a given offset has
 * been read (`reached`), or until everything stored before now has been (`barrier`).
 */
export class QueueTail {
  /** The next offset to read: everything below has been handed to onMessages. */
  next: number;
  /** Since when pulls have been succeeding without a break (undefined while failing). */
  healthySince: number | undefined;
  private running = false;
  private stopped: Promise<void> = Promise.resolve();
  private waiters: { offset: number; resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(
    private readonly client: RocketMQClient,
    readonly queue: MessageQueue,
    from: number,
    private readonly options: QueueTailOptions,
  ) {
    this.next = from;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopped = this.loop();
  }

  /** Stops after the pull in flight (bounded by suspendMs); waiters are rejected. */
  stop(): Promise<void> {
    this.running = false;
    for (const w of this.waiters.splice(0)) w.reject(new Error(`stopped following ${this.queue.topic}`));
    return this.stopped;
  }

  /** Resolves once every offset up to and including `offset` has been read. */
  reached(offset: number): Promise<void> {
    if (this.next > offset) return Promise.resolve();
    if (!this.running) return Promise.reject(new Error(`not following ${this.queue.topic}`));
    return new Promise((resolve, reject) => this.waiters.push({ offset, resolve, reject }));
  }

  /** Resolves once everything the queue held when it was called has been read (the read barrier). */
  async barrier(): Promise<void> {
    const max = await this.client.getMaxOffset(this.queue);
    await this.reached(max - 1);
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (this.running) {
      try {
        const result = await this.client.pull(this.queue, this.next, { maxMessages: this.options.maxMessages, suspendMs: this.options.suspendMs });
        if (!this.running) return;
        failures = 0;
        this.healthySince ??= Date.now();
        if (result.status === 'FOUND') {
          const fresh = result.messages.filter((m) => m.queueOffset >= this.next);
          if (fresh.length > 0) await this.options.onMessages(fresh);
        }
        if (result.nextBeginOffset > this.next || result.status === 'OFFSET_ILLEGAL') this.next = result.nextBeginOffset;
        this.wake();
      } catch (e) {
        if (!this.running) return;
        this.healthySince = undefined;
        this.options.onError?.(e as Error);
        failures++;
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** Math.min(failures, 5), 2000)));
      }
    }
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (this.next > w.offset) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }
}

/** Everything `queue` holds from `from` up to its max offset at the call, and the offset after it. */
export async function readQueue(client: RocketMQClient, queue: MessageQueue, from: number, maxMessages = 32): Promise<{ messages: RocketMessage[]; next: number }> {
  const messages: RocketMessage[] = [];
  let next = from;
  const end = (await client.getMaxOffset(queue)) - 1;
  while (next <= end) {
    const result = await client.pull(queue, next, { maxMessages });
    for (const m of result.messages) if (m.queueOffset >= next) messages.push(m);
    if (result.nextBeginOffset <= next) break;
    next = result.nextBeginOffset;
  }
  return { messages, next };
}
