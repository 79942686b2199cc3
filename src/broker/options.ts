/** Everything the broker core can be tuned by; ops/config fills it from the user's configuration. */
export interface BrokerOptions {
  /** Largest packet accepted, and announced in CONNACK (bytes). */
  maxPacketSize: number;
  /** How many QoS 1/2 PUBLISHes a client may have unacknowledged towards us (MQTT 5 Receive Maximum). */
  receiveMaximum: number;
  /** Upper bound on QoS 1/2 deliveries in flight to one client, whatever its Receive Maximum. */
  maxInflight: number;
  /** Topic aliases accepted from a client, and used towards a client at most. */
  topicAliasMaximum: number;
  /** Largest keep alive granted (seconds); 0 for no limit. A larger request gets Server Keep Alive. */
  maxKeepAlive: number;
  /** Topic filters no client may subscribe to: a requested filter they match gets SUBACK 0x80. */
  denySubscribe: string[];
  /** A connection that sends no CONNECT within this time is closed (ms). */
  connectTimeoutMs: number;
  /** Maximum session expiry interval granted to MQTT 5 clients (seconds). */
  maxSessionExpiryInterval: number;
  /** Session expiry for MQTT 3.x clients with clean session = 0 (seconds; 4294967295 = never). */
  mqtt3SessionExpiryInterval: number;
  /** Bytes a connection may have waiting in its socket before deliveries to it pause. */
  maxWriteBuffer: number;
  /**
   * Payload bytes of a connection's requests waiting for their acknowledgement (the store) before
   * the broker stops reading from it; it reads again once half of them are answered. The count of
   * waiting requests is bounded the same way by `receiveMaximum`, for every protocol version.
   */
  maxPendingInboundBytes: number;
  /** Messages a session may have waiting (not yet sent) before the overflow policy applies. */
  maxQueuedMessages: number;
  /** Payload bytes a session may have waiting before the overflow policy applies. */
  maxQueuedBytes: number;
  queueOverflow: 'drop-oldest' | 'drop-new';
  /** Whether QoS 0 messages are queued for offline persistent sessions. */
  queueQos0Offline: boolean;
  /** How many times a failed store commit is retried before the publish is refused. */
  publishMaxRetries: number;
  publishRetryBaseMs: number;
  publishRetryMaxMs: number;
  /** PUBLISHes per second one client may send (a second's worth may come at once); 0: no limit. */
  maxPublishRate: number;
  /** Payload bytes per second one client may publish, likewise; 0: no limit. */
  maxPublishBytesRate: number;
  /** Largest Authentication Data in a CONNECT or AUTH (MQTT 5 enhanced authentication), bytes. */
  maxAuthDataSize: number;
}

export const defaultBrokerOptions: BrokerOptions = {
  maxPacketSize: 1024 * 1024,
  receiveMaximum: 1024,
  maxInflight: 256,
  topicAliasMaximum: 64,
  maxKeepAlive: 0,
  denySubscribe: [],
  connectTimeoutMs: 10_000,
  maxSessionExpiryInterval: 0xffffffff,
  mqtt3SessionExpiryInterval: 0xffffffff,
  maxWriteBuffer: 1024 * 1024,
  maxPendingInboundBytes: 8 * 1024 * 1024,
  maxQueuedMessages: 10_000,
  maxQueuedBytes: 64 * 1024 * 1024,
  queueOverflow: 'drop-oldest',
  queueQos0Offline: false,
  publishMaxRetries: 5,
  publishRetryBaseMs: 50,
  publishRetryMaxMs: 2000,
  maxPublishRate: 0,
  maxPublishBytesRate: 0,
  maxAuthDataSize: 1024,
};

export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

export interface AuthRequest {
  clientId: string;
  username?: string;
  password?: Buffer;
  remoteAddress: string;
  /** Set when the user name is the CN (or SAN) of a client certificate verified in the TLS handshake. */
  certificateName?: string;
}

/**
 * Topic limits carried by a client's credentials (a JWT's topics claim): checked for that
 * connection on top of `authorizePublish` / `authorizeSubscribe`.
 */
export interface TopicLimits {
  canPublish(topic: string): boolean;
  /** The filter as subscribed, `$share/{group}/` prefix included. */
  canSubscribe(filter: string): boolean;
}

/** A client let in by credentials that say more than yes: who it is, and what it may use. */
export interface AuthGrant {
  /** The user name the credentials prove (a JWT's user claim), used for authorization in place of CONNECT's. */
  username?: string;
  limits?: TopicLimits;
}

/**
 * What `authenticate` decides: true (or a grant) lets the client in; false refuses it as a bad
 * user name or password (MQTT 5 0x86, 3.1.1 return code 4); a number refuses it with that MQTT 5
 * reason code (0x87 Not authorized: 3.1.1 return code 5, for a client that gave no credentials
 * where they are required).
 */
export type AuthDecision = boolean | number | AuthGrant;

/** The start of an MQTT 5 enhanced authentication exchange (§4.12): from CONNECT, or from AUTH 0x19 (re-authentication). */
export interface EnhancedAuthRequest {
  method: string;
  /** The Authentication Data of the CONNECT or AUTH, if it had any. */
  data: Buffer | undefined;
  clientId: string;
  /** CONNECT's User Name (the certificate's name under tlsCertAsUsername); on re-authentication, the authenticated user. */
  username: string | undefined;
  remoteAddress: string;
}

/**
 * One step of an exchange. `continue`: the broker sends AUTH 0x18 with `data` and hands the
 * client's answer (AUTH 0x18) to `next`. `success`: the client is `username`; `data` goes back in
 * the CONNACK (or AUTH 0x00). `failure`: refused with `reasonCode` (a CONNACK code).
 */
export type EnhancedAuthStep =
  | { kind: 'continue'; data: Buffer; next(data: Buffer | undefined): EnhancedAuthStep }
  | { kind: 'success'; username: string; data?: Buffer }
  | { kind: 'failure'; reasonCode: number; reason: string };

/**
 * MQTT 5 enhanced authentication. Steps are synchronous, so the channel stays a state machine
 * without waits of its own: SCRAM's server side is a few HMACs over stored keys. The channel
 * bounds the exchange (one at a time, `maxAuthDataSize`, `connectTimeoutMs`).
 */
export interface EnhancedAuthenticator {
  /** Whether `method` is offered: a CONNECT with another gets CONNACK 0x8C. */
  supports(method: string): boolean;
  start(req: EnhancedAuthRequest): EnhancedAuthStep;
}

/** Extension points; every default allows. `username` is the one the client authenticated with, if any. */
export interface BrokerHooks {
  authenticate(req: AuthRequest): AuthDecision | Promise<AuthDecision>;
  authorizePublish(clientId: string, topic: string, username?: string): boolean;
  authorizeSubscribe(clientId: string, filter: string, username?: string): boolean;
  /**
   * When set, checked for each message before it is sent to a client: a subscription granted for
   * a filter may still cover topics the client may not read (a deny rule inside it, rules
   * reloaded since the SUBSCRIBE). A message it refuses is dropped for that client.
   */
  authorizeRead?(clientId: string, topic: string, username?: string): boolean;
  /** Absent: no enhanced authentication (every Authentication Method gets 0x8C). */
  readonly enhancedAuth?: EnhancedAuthenticator;
}

export const allowAll: BrokerHooks = {
  authenticate: () => true,
  authorizePublish: () => true,
  authorizeSubscribe: () => true,
};

/** Counters the broker keeps; ops/metrics exports them. */
export class BrokerStats {
  connections = 0;
  connectionsTotal = 0;
  connectionsRefused = 0;
  messagesReceived = 0;
  messagesSent = 0;
  messagesDroppedQueueFull = 0;
  messagesDroppedExpired = 0;
  messagesDroppedTooLarge = 0;
  messagesDroppedOfflineQos0 = 0;
  messagesDroppedUnreadable = 0;
  /** Deliveries dropped because `authorizeRead` refused the topic to the client. */
  messagesDroppedNotAuthorized = 0;
  /** Cluster mode: messages from RocketMQ applications published to MQTT (the bridge's downlink). */
  downlinkPublished = 0;
  downlinkRejected = 0;
  publishStoreFailures = 0;
  storeRetries = 0;
  /**
   * Store batches that carried deliveries or background writes and were answered, and the time
   * they took in total (ms, from the first write joining the batch to the store's answer; a
   * batch's retries not included). The mean over an interval is the change of one over the other.
   */
  storeCommits = 0;
  storeCommitMs = 0;
  malformedPackets = 0;
  /** Connections closed for publishing faster than maxPublishRate / maxPublishBytesRate. */
  rateLimited = 0;
  /** Connections refused for coming from an address past maxConnectionsPerAddressPerSecond. */
  connectionsRateLimited = 0;
  willsPublished = 0;
  sessionsExpired = 0;
}
