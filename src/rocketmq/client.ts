// RocketMQClient: the public face of src/rocketmq. Routes through the namesrv, talks to brokers.
import { RemotingCommand } from './codec';
import { ConnectionOptions, RequestSpec } from './connection';
import { CreateTopicOptions, encodeCreateConsumerGroup, encodeCreateTopic, encodeHeartbeat } from './admin';
import { DEFAULT_CONSUMER_GROUP, PullOptions, PullResult, decodePullResponse, encodePull } from './consumer';
import {
  ClientClosedError,
  InvalidArgumentError,
  NoRouteError,
  RemotingConnectError,
  ResponseCode,
  RocketMQError,
  SubscriptionError,
  TopicExistAlreadyError,
  TopicNotExistError,
  isSafeToRetry,
  isTransient,
} from './errors';
import { MessageProperty, OutgoingMessage, bodyBuffer } from './message';
import { lmqOffsetsOf } from './message-decoder';
import { consumerOffsetFrom, encodeGetMaxOffset, encodeGetMinOffset, encodeQueryConsumerOffset, encodeUpdateConsumerOffset, offsetFrom } from './offsets';
import {
  DEFAULT_PRODUCER_GROUP,
  EncodeOptions,
  QueueSelector,
  SendResult,
  decodeSendResponse,
  encodeBatchSend,
  encodeSend,
  lmqDispatchValue,
} from './producer';
import { RemotingClient } from './remoting-client';
import { RequestCode } from './request-code';
import {
  AUTO_CREATE_TOPIC_KEY,
  ClusterInfo,
  MessageQueue,
  NameServerClient,
  RouteCache,
  TopicRoute,
  readableQueues,
  writableQueues,
} from './route';

export interface RocketMQClientOptions {
  /** Name-server addresses ("host:port"), or one string separated by ";" like the Java client. */
  namesrvAddr: string | string[];
  producerGroup?: string;
  /** Default consumer group for pulls that name none. */
  consumerGroup?: string;
  requestTimeoutMs?: number;
  routeTtlMs?: number;
  /** Sends retried after errors that guarantee nothing was stored (connect failure, broker busy). */
  sendRetries?: number;
  /** Idempotent calls (pull, offsets, routes) retried after transient errors. */
  idempotentRetries?: number;
  retryBackoffMs?: number;
  /** zlib-compress bodies over this many bytes; undefined = never. */
  compressBodyOverBytes?: number;
  /** When a topic has no route yet, send through the TBW102 template so brokers auto-create it. */
  autoCreateTopic?: boolean;
  connection?: Partial<ConnectionOptions>;
}

export interface SendOptions {
  /** Send to this queue instead of selecting one. */
  queue?: MessageQueue;
  timeoutMs?: number;
}

export interface LmqSendOptions extends SendOptions {
  /** Read back the LMQ offsets the broker assigned (one extra pull of the stored message). Default true. */
  resolveLmqOffsets?: boolean;
}

export interface LmqSendResult extends SendResult {
  /** LMQ name (with %LMQ% prefix) -> offset in that LMQ (queue id 0, on queue.brokerName). */
  lmqOffsets: Map<string, number>;
  lmqNames: string[];
}

export interface BatchSendResult {
  msgIds: string[];
  queue: MessageQueue;
  /** Offset of the first message; the others follow consecutively. */
  firstQueueOffset: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class RocketMQClient {
  readonly remoting: RemotingClient;
  readonly routes: RouteCache;
  private readonly selector = new QueueSelector();
  private readonly encodeOptions: EncodeOptions;
  private readonly options: Required<Omit<RocketMQClientOptions, 'compressBodyOverBytes' | 'connection' | 'namesrvAddr'>>;
  private closed = false;
  readonly clientId = `iot-bridge@${process.pid}@${Date.now().toString(36)}`;

  constructor(options: RocketMQClientOptions) {
    const addrs = (Array.isArray(options.namesrvAddr) ? options.namesrvAddr : options.namesrvAddr.split(';'))
      .map((a) => a.trim())
      .filter((a) => a !== '');
    if (addrs.length === 0) throw new InvalidArgumentError('namesrvAddr is empty');
    this.options = {
      producerGroup: options.producerGroup ?? DEFAULT_PRODUCER_GROUP,
      consumerGroup: options.consumerGroup ?? DEFAULT_CONSUMER_GROUP,
      requestTimeoutMs: options.requestTimeoutMs ?? 5000,
      routeTtlMs: options.routeTtlMs ?? 30_000,
      sendRetries: options.sendRetries ?? 2,
      idempotentRetries: options.idempotentRetries ?? 3,
      retryBackoffMs: options.retryBackoffMs ?? 200,
      autoCreateTopic: options.autoCreateTopic ?? true,
    };
    this.remoting = new RemotingClient({ ...options.connection, requestTimeoutMs: this.options.requestTimeoutMs });
    this.routes = new RouteCache(new NameServerClient(this.remoting, addrs), { routeTtlMs: this.options.routeTtlMs });
    this.encodeOptions = { producerGroup: this.options.producerGroup, compressBodyOverBytes: options.compressBodyOverBytes };
  }

  // ---- routes ----

  getTopicRoute(topic: string, forceRefresh = false): Promise<TopicRoute> {
    return this.routes.getRoute(topic, forceRefresh);
  }

  /** Writable queues, in the stable order used for sharding-key selection. */
  async getPublishQueues(topic: string): Promise<MessageQueue[]> {
    return writableQueues(await this.routes.getRoute(topic), topic);
  }

  /** Readable queues of a topic across all brokers (for broadcast reading). */
  async getSubscribeQueues(topic: string): Promise<MessageQueue[]> {
    return readableQueues(await this.routes.getRoute(topic));
  }

  clusterInfo(): Promise<ClusterInfo> {
    return this.routes.clusterInfo();
  }

  private async publishQueues(topic: string): Promise<MessageQueue[]> {
    try {
      return writableQueues(await this.routes.getRoute(topic), topic);
    } catch (err) {
      if (!(err instanceof TopicNotExistError) || !this.options.autoCreateTopic) throw err;
      const template = await this.routes.getRoute(AUTO_CREATE_TOPIC_KEY);
      // Until the brokers register the new topic, send through the template route.
      this.routes.invalidate(topic);
      return writableQueues(template, topic).filter((q) => q.queueId < 4);
    }
  }

  // ---- send ----

  async send(msg: OutgoingMessage, options: SendOptions = {}): Promise<SendResult> {
    return this.sendWithProperties(msg, options, undefined);
  }

  /**
   * Sends one message to its topic and dispatches it to every listed LMQ (INNER_MULTI_DISPATCH).
   * LMQ names may be given with or without the %LMQ% prefix; names must not contain "/" or ",".
   */
  async sendToLmqs(msg: OutgoingMessage, lmqNames: readonly string[], options: LmqSendOptions = {}): Promise<LmqSendResult> {
    const { names, value } = lmqDispatchValue(lmqNames);
    if (bodyBuffer(msg.body).length === 0) {
      // Empty bodies can only be stored as a batch of one (see encodeSend), and batches skip multi-dispatch.
      throw new InvalidArgumentError('RocketMQ cannot dispatch a message with an empty body to LMQs; wrap the payload');
    }
    const result = await this.sendWithProperties(msg, options, { [MessageProperty.INNER_MULTI_DISPATCH]: value });
    let lmqOffsets = new Map<string, number>();
    if (options.resolveLmqOffsets ?? true) {
      lmqOffsets = await this.readLmqOffsets(result);
      const missing = names.filter((n) => !lmqOffsets.has(n));
      if (missing.length > 0) {
        throw new RocketMQError(
          `broker ${result.queue.brokerName} stored the message but did not dispatch it to ${missing.join(', ')} (are enableLmq and enableMultiDispatch on?)`,
        );
      }
    }
    return { ...result, lmqNames: names, lmqOffsets };
  }

  /** The broker writes INNER_MULTI_QUEUE_OFFSET into the stored message only; read it back from there. */
  private async readLmqOffsets(result: SendResult): Promise<Map<string, number>> {
    // The broker long-polls only at the queue's end; further ahead (its dispatch lags by several
    // messages under load) it answers OFFSET_ILLEGAL at once, so wait a little and ask again.
    let last = '';
    const deadline = Date.now() + 10_000;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const pulled = await this.pull(result.queue, result.queueOffset, { maxMessages: 1, suspendMs: 2000 });
      const stored = pulled.messages.find((m) => m.queueOffset === result.queueOffset);
      if (stored) return lmqOffsetsOf(stored.properties);
      last = `${pulled.status}, next ${pulled.nextBeginOffset}, max ${pulled.maxOffset}, got ${pulled.messages.map((m) => m.queueOffset).join(',') || 'none'}`;
      if (pulled.status === 'OFFSET_ILLEGAL') await sleep(Math.min(5 * 2 ** attempt, 200));
    }
    throw new RocketMQError(`could not read back LMQ offsets of ${result.queue.topic}:${result.queue.queueId}@${result.queueOffset} (last pull: ${last})`);
  }

  private async sendWithProperties(msg: OutgoingMessage, options: SendOptions, extra: Record<string, string> | undefined): Promise<SendResult> {
    this.assertOpen();
    const encodeOptions: EncodeOptions = extra ? { ...this.encodeOptions, extraProperties: extra } : this.encodeOptions;
    let avoidBroker: string | undefined;
    let lastError: unknown;
    for (let attempt = 0; attempt <= this.options.sendRetries; attempt++) {
      if (attempt > 0) await sleep(this.options.retryBackoffMs * attempt);
      let brokerName: string | undefined;
      try {
        const queue = options.queue ?? this.selector.select(msg.topic, await this.publishQueues(msg.topic), msg.shardingKey, avoidBroker);
        // Encode per attempt: validation errors surface before any I/O, and the born timestamp is fresh.
        const encoded = encodeSend(msg, queue, encodeOptions);
        brokerName = queue.brokerName;
        const address = await this.routes.brokerAddress(queue.brokerName, attempt > 0);
        const response = await this.remoting.request(address, encoded.spec, options.timeoutMs);
        return decodeSendResponse(response, address, queue, encoded.uniqKey);
      } catch (err) {
        lastError = err;
        if (err instanceof TopicNotExistError && !options.queue) {
          this.routes.invalidate(msg.topic);
          continue;
        }
        if (!isSafeToRetry(err) && !(err instanceof NoRouteError)) throw err;
        if (err instanceof RemotingConnectError) avoidBroker = brokerName;
        this.routes.invalidate(msg.topic);
      }
    }
    throw lastError;
  }

  /**
   * SEND_BATCH_MESSAGE: several messages of one topic to one queue in one request, stored consecutively.
   * All messages go to the queue chosen for the first message's sharding key (or `options.queue`).
   */
  async sendBatch(messages: OutgoingMessage[], options: SendOptions = {}): Promise<BatchSendResult> {
    this.assertOpen();
    const first = messages[0];
    if (!first) throw new InvalidArgumentError('batch is empty');
    const queue = options.queue ?? this.selector.select(first.topic, await this.publishQueues(first.topic), first.shardingKey);
    const { spec, uniqKeys } = encodeBatchSend(messages, queue, this.encodeOptions);
    const address = await this.routes.brokerAddress(queue.brokerName);
    const response = await this.remoting.request(address, spec, options.timeoutMs);
    const result = decodeSendResponse(response, address, queue, uniqKeys[0] as string);
    return { msgIds: uniqKeys, queue: result.queue, firstQueueOffset: result.queueOffset };
  }

  // ---- pull ----

  /** Pulls from one queue at `offset`. For an LMQ pass { topic: '%LMQ%name', queueId: 0, brokerName }. */
  pull(queue: MessageQueue, offset: number, options: PullOptions = {}): Promise<PullResult> {
    const suspendMs = options.suspendMs ?? 0;
    const timeoutMs = suspendMs + (options.timeoutMs ?? this.options.requestTimeoutMs);
    const spec = encodePull(queue, offset, { ...options, consumerGroup: options.consumerGroup ?? this.options.consumerGroup });
    return this.idempotent(queue.brokerName, spec, timeoutMs, (response, address) => decodePullResponse(response, address, queue, offset));
  }

  // ---- offsets ----

  getMaxOffset(queue: MessageQueue): Promise<number> {
    return this.idempotent(queue.brokerName, encodeGetMaxOffset(queue), undefined, (r, a) => offsetFrom(r, a, RequestCode.GET_MAX_OFFSET));
  }

  getMinOffset(queue: MessageQueue): Promise<number> {
    return this.idempotent(queue.brokerName, encodeGetMinOffset(queue), undefined, (r, a) => offsetFrom(r, a, RequestCode.GET_MIN_OFFSET));
  }

  /** The group's committed offset for the queue, or undefined if none was ever committed. */
  queryConsumerOffset(group: string, queue: MessageQueue): Promise<number | undefined> {
    return this.idempotent(queue.brokerName, encodeQueryConsumerOffset(group, queue), undefined, (r, a) => consumerOffsetFrom(r, a));
  }

  /**
   * Commits the group's offset for the queue. Brokers refuse offsets of unknown (non-%LMQ%) groups,
   * so an unknown group is created on that broker first.
   */
  async updateConsumerOffset(group: string, queue: MessageQueue, offset: number): Promise<void> {
    const update = (): Promise<void> =>
      this.idempotent(queue.brokerName, encodeUpdateConsumerOffset(group, queue, offset), undefined, (r, a) => {
        offsetFrom({ ...r, extFields: { ...r.extFields, offset: String(offset) } }, a, RequestCode.UPDATE_CONSUMER_OFFSET);
      });
    try {
      await update();
    } catch (err) {
      if (!(err instanceof SubscriptionError && err.code === ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST)) throw err;
      await this.createConsumerGroup(group, { brokerNames: [queue.brokerName] });
      await update();
    }
  }

  /** Creates a consumer (subscription) group on the given brokers, or on every registered broker. */
  async createConsumerGroup(group: string, options: { brokerNames?: string[] } = {}): Promise<void> {
    this.assertOpen();
    const names = options.brokerNames ?? [...(await this.routes.clusterInfo()).brokerAddrTable.keys()];
    const spec = encodeCreateConsumerGroup(group);
    for (const name of names) await this.remoting.requestOk(await this.routes.brokerAddress(name), spec);
  }

  // ---- admin ----

  /** Creates (or updates) a topic on the given brokers, or on every registered broker. */
  async createTopic(topic: string, options: CreateTopicOptions = {}): Promise<void> {
    this.assertOpen();
    const info = await this.routes.clusterInfo();
    const names = options.brokerNames ?? [...info.brokerAddrTable.keys()].sort();
    if (names.length === 0) throw new NoRouteError(topic, 'no broker is registered at the name server');
    const spec = encodeCreateTopic(topic, options);
    for (const name of names) {
      const address = await this.routes.brokerAddress(name);
      try {
        await this.remoting.requestOk(address, spec);
      } catch (err) {
        if (!(err instanceof TopicExistAlreadyError)) throw err;
      }
    }
    this.routes.invalidate(topic);
    if (options.waitForRoute ?? true) {
      // Brokers register the new topic with the namesrv asynchronously; wait (bounded) until it routes.
      for (let attempt = 0; attempt < 100; attempt++) {
        try {
          const route = await this.routes.getRoute(topic, true);
          const routed = new Set(route.queues.map((q) => q.brokerName));
          if (names.every((n) => routed.has(n))) return;
        } catch (err) {
          if (!(err instanceof TopicNotExistError)) throw err;
        }
        await sleep(100);
      }
      throw new NoRouteError(topic, `topic ${topic} was created but the name server did not route it to ${names.join(', ')} within 10 s`);
    }
  }

  /** Registers this client as a producer of its group on every broker (optional: sends and pulls work without it). */
  async heartbeat(): Promise<void> {
    const info = await this.routes.clusterInfo();
    const spec = encodeHeartbeat(this.clientId, this.options.producerGroup);
    await Promise.all([...info.brokerAddrTable.keys()].map(async (name) => this.remoting.requestOk(await this.routes.brokerAddress(name), spec)));
  }

  close(): void {
    this.closed = true;
    this.remoting.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new ClientClosedError('RocketMQClient is closed');
  }

  /** Sends an idempotent request to a broker, retrying transient failures with backoff. */
  private async idempotent<T>(
    brokerName: string,
    spec: RequestSpec,
    timeoutMs: number | undefined,
    decode: (response: RemotingCommand, address: string) => T,
  ): Promise<T> {
    this.assertOpen();
    let lastError: unknown;
    for (let attempt = 0; attempt <= this.options.idempotentRetries; attempt++) {
      if (attempt > 0) await sleep(this.options.retryBackoffMs * attempt);
      try {
        const address = await this.routes.brokerAddress(brokerName, attempt > 0);
        const response = await this.remoting.request(address, spec, timeoutMs);
        return decode(response, address);
      } catch (err) {
        lastError = err;
        if (this.closed || !(isTransient(err) || err instanceof NoRouteError)) throw err;
      }
    }
    throw lastError;
  }
}
