// Public surface of the RocketMQ remoting client (bottom layer: imports nothing else from src/).
export { RocketMQClient } from './client';
export type { RocketMQClientOptions, SendOptions, LmqSendOptions, LmqSendResult, BatchSendResult } from './client';
export type { SendResult } from './producer';
export { createUniqKey } from './producer';
export type { PullOptions, PullResult, PullStatus } from './consumer';
export type { CreateTopicOptions } from './admin';
export type { Message, OutgoingMessage } from './message';
export { LMQ_PREFIX, LMQ_QUEUE_ID, isLmq } from './message';
export type { MessageQueue, TopicRoute, ClusterInfo, BrokerData, QueueData } from './route';
export * from './errors';
