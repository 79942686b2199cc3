// The cluster's recorded set of RocketMQ brokers (docs/cluster.md §3). A session's home broker is
// picked by hashing over this set, so every node must use the same one, whatever the name server
// lists at the moment it starts: a broker that is restarting must stay the home of its sessions.
import type { MessageQueue, RocketMQClient } from '../rocketmq';
import type { ClusterLog } from './cluster-store';
import type { ClusterNames } from './names';
import { readQueue } from './queue-tail';

interface BrokerSetRecord {
  brokers: string[];
  by: string;
}

/**
 * The recorded broker set: the union of every record in the meta topic on every broker the route
 * lists. The first node to find none records the brokers it sees, on each of them, and reads the
 * topic again: two nodes that started at once both record, and both end with the union. A broker
 * registered later that is not in the set is not used (adding brokers moves homes: not supported).
 */
export async function recordedBrokers(mq: RocketMQClient, names: ClusterNames, nodeId: string, log: ClusterLog): Promise<string[]> {
  const routed = [...new Set((await mq.getPublishQueues(names.logs)).map((q) => q.brokerName))].sort();
  const metaQueues = await mq.getSubscribeQueues(names.meta);
  let known = await readRecords(mq, metaQueues, log);
  if (known.size === 0) {
    const record: BrokerSetRecord = { brokers: routed, by: nodeId };
    for (const queue of metaQueues) {
      const sent = await mq.send({ topic: names.meta, body: JSON.stringify(record) }, { queue });
      await untilDispatched(mq, queue, sent.queueOffset);
    }
    known = await readRecords(mq, metaQueues, log);
    log.info({ brokers: [...known].sort() }, 'recorded the cluster\'s RocketMQ brokers');
  }
  const ignored = routed.filter((b) => !known.has(b));
  if (ignored.length > 0) log.warn({ ignored, recorded: [...known].sort() }, 'RocketMQ brokers outside the cluster\'s recorded set are not used');
  return [...known].sort();
}

/** RocketMQ counts an entry in the max offset only once it is dispatched, a few ms after SEND_OK. */
async function untilDispatched(mq: RocketMQClient, queue: MessageQueue, offset: number): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if ((await mq.getMaxOffset(queue)) > offset) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`the broker set record at ${queue.brokerName}:${offset} was not dispatched in time`);
}

async function readRecords(mq: RocketMQClient, queues: MessageQueue[], log: ClusterLog): Promise<Set<string>> {
  const known = new Set<string>();
  for (const queue of queues) {
    for (const m of (await readQueue(mq, queue, await mq.getMinOffset(queue))).messages) {
      try {
        const record = JSON.parse(m.body.toString('utf8')) as Partial<BrokerSetRecord>;
        if (!Array.isArray(record.brokers)) throw new Error('no brokers');
        for (const broker of record.brokers) if (typeof broker === 'string') known.add(broker);
      } catch {
        log.warn({ msgId: m.uniqKey, topic: m.topic }, 'unreadable broker set record skipped');
      }
    }
  }
  return known;
}

/**
 * Waits until every broker of the set answers. A node must read every broker's share of the
 * subscription index before it routes anything, so it does not serve while one is missing.
 */
export async function untilReachable(mq: RocketMQClient, names: ClusterNames, brokers: string[], log: ClusterLog, stopped: () => boolean): Promise<void> {
  let lastLog = 0;
  for (;;) {
    const missing: string[] = [];
    for (const brokerName of brokers) {
      await mq.getMaxOffset({ topic: names.subscriptions, queueId: 0, brokerName }).catch(() => missing.push(brokerName));
    }
    if (missing.length === 0 || stopped()) return;
    if (Date.now() - lastLog > 10_000) {
      lastLog = Date.now();
      log.warn({ missing }, 'waiting for RocketMQ brokers of the cluster\'s recorded set before serving');
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}
