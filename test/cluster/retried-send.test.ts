// A SEND whose outcome is unknown (it timed out, but RocketMQ stored it) is retried with the same
// UNIQ_KEY, and the subscriber's node drops the second copy: QoS 2 stays exactly once.
// The nodes run in this process so that one SEND can be made to time out after it was stored:
// the RocketMQ, the client and the stores are real; only the reply of one request is replaced.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ClusterStore } from '../../src/cluster/cluster-store';
import { startBroker, type RunningBroker } from '../../src/index';
import { defaultConfig } from '../../src/ops/config';
import { silentLogger } from '../../src/broker/options';
import { RemotingTimeoutError } from '../../src/rocketmq';
import { RawClient } from '../mqtt-helpers';
import { namesrvAddr, uniqueName } from '../rocketmq/helpers';

const clusterName = uniqueName('r').replace(/_/g, '').slice(0, 24);
let pubNode: RunningBroker;
let subNode: RunningBroker;

before(async () => {
  const config = { ...defaultConfig, host: '127.0.0.1', port: 0, cluster: true, namesrv: namesrvAddr(), clusterName, logLevel: 'silent' as const, publishRetryBaseMs: 10 };
  pubNode = await startBroker({ ...config, nodeId: 'retry-pub' }, silentLogger);
  subNode = await startBroker({ ...config, nodeId: 'retry-sub' }, silentLogger);
});

after(async () => {
  await pubNode?.stop();
  await subNode?.stop();
});

test('cluster: a QoS 2 SEND that timed out after RocketMQ stored it is retried and delivered once', async () => {
  const store = pubNode.broker.store as ClusterStore;
  const mq = store.mq;
  const realSend = mq.sendToLmqs.bind(mq);
  let faked = 0;
  mq.sendToLmqs = async (msg, lmqs, options) => {
    const result = await realSend(msg, lmqs, options);
    if (msg.topic === store.names.messages && faked === 0) {
      faked++;
      throw new RemotingTimeoutError('test', 3000, 'the reply was lost (stored all the same)');
    }
    return result;
  };
  const { client: sub } = await RawClient.connect(subNode.port, 5, { clientId: 'retry-subscriber' });
  const { client: pub } = await RawClient.connect(pubNode.port, 5, { clientId: 'retry-publisher' });
  try {
    await sub.subscribe('retry/#', 2);
    sub.onPacket((p) => {
      if (p.cmd === 'publish' && p.qos === 2) sub.send({ cmd: 'pubrec', messageId: p.messageId });
      if (p.cmd === 'pubrel') sub.send({ cmd: 'pubcomp', messageId: p.messageId });
    });
    pub.publish('retry/t', 'once', 2, 1);
    assert.equal((await pub.take('pubrec', (p) => p.messageId === 1, 15_000)).reasonCode ?? 0, 0);
    assert.equal(faked, 1, 'the first SEND was stored and then reported as timed out');
    pub.send({ cmd: 'pubrel', messageId: 1 });
    await pub.take('pubcomp', (p) => p.messageId === 1, 10_000);
    pub.publish('retry/t', 'marker', 2, 2);
    await pub.take('pubrec', (p) => p.messageId === 2, 10_000);
    await sub.take('publish', (p) => p.payload.toString() === 'marker', 10_000);
    assert.deepEqual(sub.all('publish').map((p) => p.payload.toString()), ['once', 'marker']);
  } finally {
    mq.sendToLmqs = realSend;
    await pub.destroy();
    await sub.destroy();
  }
});
