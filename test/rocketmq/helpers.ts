// Shared helpers for tests against the RocketMQ started by scripts/run-tests.js.
import * as crypto from 'node:crypto';
import { RocketMQClient, RocketMQClientOptions } from '../../src/rocketmq';
import { PullResult } from '../../src/rocketmq/consumer';
import { Message } from '../../src/rocketmq/message';
import { MessageQueue } from '../../src/rocketmq/route';

export function namesrvAddr(): string {
  const addr = process.env.ROCKETMQ_NAMESRV;
  if (!addr) throw new Error('ROCKETMQ_NAMESRV is not set: run the tests with `npm test` (it starts RocketMQ) or point it at your namesrv');
  return addr;
}

/** Set only when scripts/run-tests.js started RocketMQ itself, so tests may restart or add brokers. */
export function localWorkDir(): string | undefined {
  return process.env.ROCKETMQ_TEST_WORK_DIR;
}

export function localBrokerPort(): number {
  return Number(process.env.ROCKETMQ_TEST_BROKER_PORT ?? 30911);
}

export function newClient(options: Partial<RocketMQClientOptions> = {}): RocketMQClient {
  return new RocketMQClient({ namesrvAddr: namesrvAddr(), requestTimeoutMs: 10_000, ...options });
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${crypto.randomBytes(3).toString('hex')}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Pulls a queue from `from` until `count` messages are read or the bounded attempts/time run out. */
export async function pullMessages(
  client: RocketMQClient,
  queue: MessageQueue,
  from: number,
  count: number,
  options: { consumerGroup?: string; deadlineMs?: number } = {},
): Promise<{ messages: Message[]; last: PullResult | undefined }> {
  const messages: Message[] = [];
  let offset = from;
  let last: PullResult | undefined;
  const deadline = Date.now() + (options.deadlineMs ?? 30_000);
  for (let attempt = 0; attempt < 10_000 && messages.length < count && Date.now() < deadline; attempt++) {
    last = await client.pull(queue, offset, { maxMessages: 32, suspendMs: 1000, consumerGroup: options.consumerGroup });
    messages.push(...last.messages);
    offset = last.nextBeginOffset;
  }
  return { messages, last };
}
