// Typed errors. Every error that comes from a broker or namesrv response carries its response code,
// so callers can branch on the class (instanceof) or on `code` without parsing remarks.

export class RocketMQError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The bytes on a connection did not form a valid remoting frame; that connection was closed. */
export class RemotingProtocolError extends RocketMQError {}

/** The TCP connection could not be opened; nothing was written, so the request is safe to retry. */
export class RemotingConnectError extends RocketMQError {
  constructor(readonly address: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The connection closed while a request was in flight: the broker may or may not have processed it. */
export class RemotingConnectionClosedError extends RocketMQError {
  constructor(readonly address: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** No response within the timeout: the broker may or may not have processed the request. */
export class RemotingTimeoutError extends RocketMQError {
  constructor(readonly address: string, readonly timeoutMs: number, message: string) {
    super(message);
  }
}

/** Too many requests in flight on one connection: refused before writing (bounded memory). */
export class RemotingTooManyRequestsError extends RocketMQError {}

/** The client was closed. */
export class ClientClosedError extends RocketMQError {}

/** Invalid input detected before anything was sent (e.g. a property containing a separator character). */
export class InvalidArgumentError extends RocketMQError {}

/** No route (namesrv has no broker for the topic, or the named broker is unknown). */
export class NoRouteError extends RocketMQError {
  constructor(readonly topic: string, message: string) {
    super(message);
  }
}

/** A stored message in a pull response could not be decoded. */
export class MessageDecodeError extends RocketMQError {}

/** Response codes from org.apache.rocketmq.remoting.protocol.ResponseCode (and RemotingSysResponseCode). */
export const ResponseCode = {
  SUCCESS: 0,
  SYSTEM_ERROR: 1,
  SYSTEM_BUSY: 2,
  REQUEST_CODE_NOT_SUPPORTED: 3,
  TRANSACTION_FAILED: 4,
  FLUSH_DISK_TIMEOUT: 10,
  SLAVE_NOT_AVAILABLE: 11,
  FLUSH_SLAVE_TIMEOUT: 12,
  MESSAGE_ILLEGAL: 13,
  SERVICE_NOT_AVAILABLE: 14,
  VERSION_NOT_SUPPORTED: 15,
  NO_PERMISSION: 16,
  TOPIC_NOT_EXIST: 17,
  TOPIC_EXIST_ALREADY: 18,
  PULL_NOT_FOUND: 19,
  PULL_RETRY_IMMEDIATELY: 20,
  PULL_OFFSET_MOVED: 21,
  QUERY_NOT_FOUND: 22,
  SUBSCRIPTION_PARSE_FAILED: 23,
  SUBSCRIPTION_NOT_EXIST: 24,
  SUBSCRIPTION_NOT_LATEST: 25,
  SUBSCRIPTION_GROUP_NOT_EXIST: 26,
  FILTER_DATA_NOT_EXIST: 27,
  FILTER_DATA_NOT_LATEST: 28,
  INVALID_PARAMETER: 29,
  POLLING_FULL: 209,
  POLLING_TIMEOUT: 210,
  BROKER_NOT_EXIST: 211,
  FLOW_CONTROL: 215,
  NOT_LEADER_FOR_QUEUE: 501,
  ILLEGAL_OPERATION: 604,
  GO_AWAY: 1500,
} as const;

/** A broker or namesrv answered with a non-success response code. */
export class BrokerResponseError extends RocketMQError {
  constructor(
    readonly code: number,
    readonly remark: string | undefined,
    readonly address: string,
    readonly requestCode: number,
  ) {
    super(`RocketMQ ${address} answered request ${requestCode} with code ${code}${remark ? `: ${remark}` : ''}`);
  }
}

export class SystemError extends BrokerResponseError {}
/** Broker overloaded (SYSTEM_BUSY, FLOW_CONTROL, POLLING_FULL): back off and retry. */
export class SystemBusyError extends BrokerResponseError {}
export class RequestCodeNotSupportedError extends BrokerResponseError {}
/** Stored, but replication or flush did not confirm in time (FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE). */
export class NotDurableError extends BrokerResponseError {}
export class MessageIllegalError extends BrokerResponseError {}
/** Broker refuses service (e.g. disk full, shutting down, GO_AWAY). */
export class ServiceNotAvailableError extends BrokerResponseError {}
export class VersionNotSupportedError extends BrokerResponseError {}
export class NoPermissionError extends BrokerResponseError {}
export class TopicNotExistError extends BrokerResponseError {}
export class TopicExistAlreadyError extends BrokerResponseError {}
export class SubscriptionError extends BrokerResponseError {}
export class InvalidParameterError extends BrokerResponseError {}
export class BrokerNotExistError extends BrokerResponseError {}
export class NotLeaderForQueueError extends BrokerResponseError {}
export class IllegalOperationError extends BrokerResponseError {}

type BrokerErrorClass = new (code: number, remark: string | undefined, address: string, requestCode: number) => BrokerResponseError;

const ERROR_CLASS_BY_CODE: ReadonlyMap<number, BrokerErrorClass> = new Map<number, BrokerErrorClass>([
  [ResponseCode.SYSTEM_ERROR, SystemError],
  [ResponseCode.SYSTEM_BUSY, SystemBusyError],
  [ResponseCode.FLOW_CONTROL, SystemBusyError],
  [ResponseCode.POLLING_FULL, SystemBusyError],
  [ResponseCode.REQUEST_CODE_NOT_SUPPORTED, RequestCodeNotSupportedError],
  [ResponseCode.FLUSH_DISK_TIMEOUT, NotDurableError],
  [ResponseCode.FLUSH_SLAVE_TIMEOUT, NotDurableError],
  [ResponseCode.SLAVE_NOT_AVAILABLE, NotDurableError],
  [ResponseCode.MESSAGE_ILLEGAL, MessageIllegalError],
  [ResponseCode.SERVICE_NOT_AVAILABLE, ServiceNotAvailableError],
  [ResponseCode.GO_AWAY, ServiceNotAvailableError],
  [ResponseCode.VERSION_NOT_SUPPORTED, VersionNotSupportedError],
  [ResponseCode.NO_PERMISSION, NoPermissionError],
  [ResponseCode.TOPIC_NOT_EXIST, TopicNotExistError],
  [ResponseCode.TOPIC_EXIST_ALREADY, TopicExistAlreadyError],
  [ResponseCode.SUBSCRIPTION_PARSE_FAILED, SubscriptionError],
  [ResponseCode.SUBSCRIPTION_NOT_EXIST, SubscriptionError],
  [ResponseCode.SUBSCRIPTION_NOT_LATEST, SubscriptionError],
  [ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST, SubscriptionError],
  [ResponseCode.INVALID_PARAMETER, InvalidParameterError],
  [ResponseCode.BROKER_NOT_EXIST, BrokerNotExistError],
  [ResponseCode.NOT_LEADER_FOR_QUEUE, NotLeaderForQueueError],
  [ResponseCode.ILLEGAL_OPERATION, IllegalOperationError],
]);

export function errorForResponse(code: number, remark: string | undefined, address: string, requestCode: number): BrokerResponseError {
  const ErrorClass = ERROR_CLASS_BY_CODE.get(code) ?? BrokerResponseError;
  return new ErrorClass(code, remark, address, requestCode);
}

/** Errors after which the same request may be sent again without risk of a duplicate. */
export function isSafeToRetry(err: unknown): boolean {
  return err instanceof RemotingConnectError || err instanceof SystemBusyError || err instanceof ServiceNotAvailableError;
}

/** Errors that say "this connection or broker is unhealthy right now". */
export function isTransient(err: unknown): boolean {
  return (
    isSafeToRetry(err) ||
    err instanceof RemotingConnectionClosedError ||
    err instanceof RemotingTimeoutError ||
    err instanceof RemotingProtocolError
  );
}
