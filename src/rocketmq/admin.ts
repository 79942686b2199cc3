// UPDATE_AND_CREATE_TOPIC and HEART_BEAT.
import { RequestSpec } from './connection';
import { RequestCode } from './request-code';
import { AUTO_CREATE_TOPIC_KEY, PERM_READ, PERM_WRITE } from './route';

export interface CreateTopicOptions {
  /** Read and write queue count on each broker (default 4). */
  queueNums?: number;
  perm?: number;
  /** Brokers to create it on; default: every broker registered at the namesrv. */
  brokerNames?: string[];
  /** Wait until the namesrv route lists every target broker (default true). */
  waitForRoute?: boolean;
  /** Topic attributes as RocketMQ's admin tools write them, e.g. `+cleanup.policy=COMPACTION` (fixed at creation). */
  attributes?: string;
}

export function encodeCreateTopic(topic: string, options: CreateTopicOptions): RequestSpec {
  const queueNums = String(options.queueNums ?? 4);
  return {
    code: RequestCode.UPDATE_AND_CREATE_TOPIC,
    extFields: {
      topic,
      defaultTopic: AUTO_CREATE_TOPIC_KEY,
      readQueueNums: queueNums,
      writeQueueNums: queueNums,
      perm: String(options.perm ?? (PERM_READ | PERM_WRITE)),
      topicFilterType: 'SINGLE_TAG',
      topicSysFlag: '0',
      order: 'false',
      ...(options.attributes !== undefined ? { attributes: options.attributes } : {}),
    },
  };
}

/** HeartbeatData with only a producer group: keeps the broker's producer table aware of this client. */
export function encodeHeartbeat(clientId: string, producerGroup: string): RequestSpec {
  const body = JSON.stringify({
    clientID: clientId,
    consumerDataSet: [],
    producerDataSet: [{ groupName: producerGroup }],
    heartbeatFingerprint: 0,
    withoutSub: false,
  });
  return { code: RequestCode.HEART_BEAT, extFields: {}, body: Buffer.from(body, 'utf8') };
}

/** SubscriptionGroupConfig with defaults for every field but the name (fastjson keeps Java's defaults). */
export function encodeCreateConsumerGroup(group: string): RequestSpec {
  return {
    code: RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
    extFields: {},
    body: Buffer.from(JSON.stringify({ groupName: group, consumeEnable: true, consumeFromMinEnable: true, consumeBroadcastEnable: true }), 'utf8'),
  };
}
