import fs from 'node:fs';
import { type BrokerOptions, defaultBrokerOptions } from '../broker/options';
import { topicFilterError } from '../protocol/topics';
import { Acl } from '../auth/acl';
import type { JwtOptions } from '../auth/jwt';
import type { ListenerOptions } from '../transport/listeners';

/** The whole configuration: where to listen, which store, the broker core's options, JWT keys (docs/security.md). */
export interface Config extends BrokerOptions, ListenerOptions, JwtOptions {
  /** Admin HTTP port serving /metrics and /healthz; 0 turns it off. */
  adminPort: number;
  /** Bearer token of the admin REST API (/api/v1); '' turns the API off. */
  adminToken: string;
  adminAdvertiseUrl: string;
  /** Seconds between $SYS topic updates; 0: none. */
  sysInterval: number;
  store: 'lmdb' | 'memory';
  /** Worker processes of the embedded broker on this machine; 1: one process, 0: one per core (docs/multi-process.md). */
  processes: number;
  dataDir: string;
  durability: 'strict' | 'relaxed';
  /** Upper bound of the LMDB memory map (bytes). */
  lmdbMapSize: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Run as a node of a cluster whose only shared state is RocketMQ (docs/cluster.md). */
  cluster: boolean;
  /** RocketMQ name server(s), `host:port`, several separated by `;`. */
  namesrv: string;
  /** This node's name in the cluster; empty: `<host name>:<port>`. */
  nodeId: string;
  /** Prefix of every RocketMQ topic and LMQ of the cluster. */
  clusterName: string;
  nodeLeaseMs: number;
  clusterMessageQueues: number;
  sessionSnapshotRenewMs: number;
  bridgeUplink: UplinkRoute[];
  bridgeDownlink: boolean;
  bridgeDownlinkTopic: string;
  /** Password file (`iot-bridge passwd`, or Mosquitto's); '' for none. */
  passwordFile: string;
  authFailuresPerMinute: number;
  /** ACL file in Mosquitto's format; '' for none. */
  aclFile: string;
  /** ACL rules in the config itself, lines of the ACL file's format. */
  aclRules: string[];
  allowAnonymous: 'auto' | 'true' | 'false';
}

/** Cluster mode: MQTT messages whose topic `filter` matches go to RocketMQ `topic` with `tag` (docs/bridge.md). */
export interface UplinkRoute {
  filter: string;
  /** '' : the cluster's message topic (`<clusterName>_msg`). */
  topic: string;
  /** '' : the first level of the MQTT topic. */
  tag: string;
}

/** `sensors/#=iot_uplink:temp` → { filter: 'sensors/#', topic: 'iot_uplink', tag: 'temp' } */
export function parseUplinkRoute(text: string): UplinkRoute | string {
  const eq = text.lastIndexOf('=');
  const filter = eq < 0 ? text : text.slice(0, eq);
  const target = eq < 0 ? '' : text.slice(eq + 1);
  const colon = target.indexOf(':');
  const topic = colon < 0 ? target : target.slice(0, colon);
  const tag = colon < 0 ? '' : target.slice(colon + 1);
  const filterError = topicFilterError(filter);
  if (filterError) return `${JSON.stringify(filter)} is not a valid topic filter (${filterError})`;
  if (filter.startsWith('$share/')) return `${JSON.stringify(filter)}: a shared subscription is not a route`;
  if (topic !== '' && !/^[a-zA-Z0-9_-]{1,100}$/.test(topic)) return `${JSON.stringify(topic)} is not a RocketMQ topic name (1 to 100 letters, digits, _ or -)`;
  if (colon >= 0 && !/^[^\s|\u0001\u0002]{1,100}$/.test(tag)) return `${JSON.stringify(tag)} is not a RocketMQ tag (no spaces or |)`;
  return { filter, topic, tag };
}

type Kind = 'int' | 'string' | 'optional-string' | 'enum' | 'bool' | 'uplink';

export interface OptionSpec {
  key: keyof Config;
  /**
   * `filters`: topic filters; a JSON array in a config file, comma-separated in a flag or environment variable.
   * `lines`: lines of text; a JSON array of strings in a config file, one per line of a flag or environment variable.
   */
  kind: Kind | 'filters' | 'lines';
  doc: string;
  min?: number;
  max?: number;
  values?: readonly string[];
}

const U32 = 0xffffffff;

/** Every option, with its validation and documentation. docs/configuration.md mirrors this table (a test checks it). */
export const optionSpecs: OptionSpec[] = [
  { key: 'host', kind: 'string', doc: 'Address the MQTT listeners bind to.' },
  { key: 'port', kind: 'int', min: 0, max: 65535, doc: 'MQTT over TCP port (0 picks a free port).' },
  { key: 'wsPort', kind: 'int', min: 0, max: 65535, doc: 'MQTT over WebSocket port, path `/mqtt`; 0 disables it.' },
  { key: 'tlsPort', kind: 'int', min: 0, max: 65535, doc: 'MQTT over TLS port; 0 disables it. Needs `tlsCertFile` and `tlsKeyFile`.' },
  { key: 'tlsCertFile', kind: 'optional-string', doc: 'PEM certificate chain for the TLS listener.' },
  { key: 'tlsKeyFile', kind: 'optional-string', doc: 'PEM private key for the TLS listener.' },
  { key: 'tlsCaFile', kind: 'optional-string', doc: 'PEM CA certificate(s) for client certificates: set, the TLS listener requires a client certificate signed by them (mutual TLS); a client without one fails the handshake. Certificate, key and CA are re-read on SIGHUP (new connections use them).' },
  { key: 'tlsCertAsUsername', kind: 'bool', doc: 'With `tlsCaFile`: the client certificate\'s subject CN (or, with `tlsCertUsernameField` `san`, its first SAN) is the client\'s user name, for the ACL, with no password needed (Mosquitto\'s `use_identity_as_username`).' },
  { key: 'tlsCertUsernameField', kind: 'enum', values: ['cn', 'san'], doc: 'With `tlsCertAsUsername`: which name of the certificate is the user name. `cn`: the subject CN. `san`: the first subjectAltName entry that is a DNS name, an email address or a URI, in the certificate\'s order (IP addresses and other kinds are skipped). A certificate without that name connects as if it had none: with the User Name and password of its CONNECT.' },
  { key: 'adminPort', kind: 'int', min: 0, max: 65535, doc: 'Admin HTTP port with `/metrics` (Prometheus), `/healthz`, `/readyz`, and with `adminToken` the REST API and web dashboard; 0 disables it.' },
  { key: 'adminAdvertiseUrl', kind: 'optional-string', doc: 'Cluster mode: the address other nodes use to reach this node\'s admin API, so that any node\'s API answers for the whole cluster (docs/admin-api.md); empty: `http://<host>:<adminPort>`, with this machine\'s host name when `host` listens on every address. Every node needs the same `adminToken`.' },
  { key: 'adminToken', kind: 'optional-string', doc: 'Bearer token of the admin REST API on the admin port (`/api/v1`: clients, kick, sessions, subscriptions, retained messages, publish, stats; docs/admin-api.md) and of the web dashboard on it (`/dashboard/`); empty turns both off. Keep it secret: it can disconnect clients and publish anything. Give it through `IOT_BRIDGE_ADMIN_TOKEN` or the config file rather than a flag, which other users can see in the process list.' },
  { key: 'sysInterval', kind: 'int', min: 0, max: 86_400, doc: 'Seconds between updates of the `$SYS` topics, in Mosquitto\'s naming (`$SYS/broker/clients/connected`, `messages/received`, `load/messages/received/1min`, `uptime`, `version`, …; cluster mode: `$SYS/brokers/<nodeId>/…`), published retained; 0 (the default) publishes none. Wildcards at the start of a filter do not match them: subscribe to `$SYS/#`.' },
  { key: 'maxConnections', kind: 'int', min: 1, max: 10_000_000, doc: 'Connections accepted at once; further CONNECTs get CONNACK "server busy" (0x89 / 3.1.1: 3).' },
  { key: 'maxConnectionsPerAddressPerSecond', kind: 'int', min: 0, max: 1_000_000, doc: 'New connections one remote address (IP, any port, every listener) may open per second, with a burst of one second\'s worth; past it the CONNECT of each further one gets CONNACK 0x9F Connection rate exceeded (3.1.1: code 3), logged at most every 10 s and counted in `iotbridge_connections_rate_limited_total`. 0 (the default): no limit, as devices behind one NAT share an address; see docs/security.md.' },
  { key: 'store', kind: 'enum', values: ['lmdb', 'memory'], doc: '`lmdb`: the embedded durable store under `dataDir`. `memory`: nothing survives a restart.' },
  { key: 'processes', kind: 'int', min: 0, max: 256, doc: 'Worker processes of the embedded broker (`lmdb` store), sharing its ports and one data directory; a primary process starts them and starts one again when it dies. 1 (the default): one process, no primary. 0: one per core. Clients of one worker publish to and take over sessions of the others; each worker has its own admin port (`adminPort` + its number), whose `/metrics` are the whole machine\'s (`/metrics/worker`: its own). See docs/multi-process.md.' },
  { key: 'dataDir', kind: 'string', doc: 'Directory of the embedded store.' },
  { key: 'durability', kind: 'enum', values: ['strict', 'relaxed'], doc: '`strict`: acknowledge after fsync (survives power loss). `relaxed`: acknowledge after the commit reaches the OS (survives kill -9 of the broker, not a power cut).' },
  { key: 'lmdbMapSize', kind: 'int', min: 1 << 20, max: 2 ** 45, doc: 'Largest size of the embedded store data, bytes. Past it new messages are refused (MQTT 5 PUBACK/PUBREC 0x97, 3.1.1 connection closed: nothing unstored is acknowledged) while deliveries and acks go on and drain it; re-checked at most every 100 ms.' },
  { key: 'logLevel', kind: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], doc: 'Log level (pino, JSON lines on stdout).' },
  { key: 'cluster', kind: 'bool', doc: 'Run as a node of a cluster on RocketMQ (`namesrv`) instead of the embedded store: sessions, subscriptions, retained messages and queues live in RocketMQ, and clients may connect to any node. `--cluster` alone means true. See docs/cluster.md.' },
  { key: 'namesrv', kind: 'optional-string', doc: 'RocketMQ name server(s) of the cluster, `host:port`, several separated by `;`. Needed with `cluster`.' },
  { key: 'nodeId', kind: 'optional-string', doc: 'Name of this node in the cluster; empty: `<host name>:<port>`. A restarted node may keep its name.' },
  { key: 'clusterName', kind: 'string', doc: 'Prefix of the cluster\'s RocketMQ topics and LMQs (letters, digits, `_`, `-`; at most 32), so several clusters can share one RocketMQ.' },
  { key: 'nodeLeaseMs', kind: 'int', min: 1000, max: 60_000, doc: 'A node whose heartbeat was not seen for this long is dead to the others: they take over its sessions and publish its clients\' wills. A node that could not renew its lease for 80% of it stops acknowledging.' },
  { key: 'clusterMessageQueues', kind: 'int', min: 1, max: 64, doc: 'Queues of the cluster\'s message topic on each RocketMQ broker (publishers are spread over them by client id).' },
  { key: 'sessionSnapshotRenewMs', kind: 'int', min: 1000, max: 7 * 24 * 3_600_000, doc: 'Cluster mode: a session log gets a fresh snapshot at least this often, also when nothing changes, so that RocketMQ\'s retention (`fileReservedTime`, 72 h by default) never deletes the last one. Keep it well below the retention.' },
  { key: 'bridgeUplink', kind: 'uplink', doc: 'Cluster mode: which MQTT messages RocketMQ applications can consume, and where. Each route is `filter`, `filter=topic` or `filter=topic:tag`; the first route whose filter matches a message\'s topic sends it to that RocketMQ topic (created on every broker with `clusterMessageQueues` queues), tagged with the fixed tag or else the first topic level. An empty topic means the cluster\'s message topic `<clusterName>_msg`. A message no route matches reaches RocketMQ only if an MQTT subscriber wants it. Default `#`: every message, in `<clusterName>_msg`. See docs/bridge.md.' },
  { key: 'bridgeDownlink', kind: 'bool', doc: 'Cluster mode: deliver to MQTT subscribers what RocketMQ applications send to `bridgeDownlinkTopic` (docs/bridge.md).' },
  { key: 'bridgeDownlinkTopic', kind: 'optional-string', doc: 'Cluster mode: the RocketMQ topic RocketMQ applications send downlink messages to; empty: `<clusterName>_downlink`.' },
  { key: 'maxPacketSize', kind: 'int', min: 64, max: 268435455, doc: 'Largest MQTT packet accepted, bytes; announced in CONNACK. Larger packets are refused from their fixed header, before buffering (MQTT 5: DISCONNECT 0x95).' },
  { key: 'receiveMaximum', kind: 'int', min: 1, max: 65535, doc: 'QoS 1/2 PUBLISHes an MQTT 5 client may have unacknowledged towards the broker; more gets DISCONNECT 0x93.' },
  { key: 'maxInflight', kind: 'int', min: 1, max: 65535, doc: 'QoS 1/2 deliveries in flight to one client, further capped by its Receive Maximum.' },
  { key: 'topicAliasMaximum', kind: 'int', min: 0, max: 65535, doc: 'Topic aliases accepted from a client, and used towards a client at most.' },
  { key: 'maxKeepAlive', kind: 'int', min: 0, max: 65535, doc: 'Largest keep alive granted to MQTT 5 clients, seconds (0: no limit); larger requests get Server Keep Alive.' },
  { key: 'passwordFile', kind: 'optional-string', doc: 'Password file: `user:hash` lines, written by `iot-bridge passwd FILE USER` (scrypt; with `--scram`, SCRAM-SHA-256 and -512 keys instead); Mosquitto password files (`mosquitto_passwd`, `$6$` and `$7$`) are read as they are. A client with a user name must give its password (else CONNACK 0x86 / 3.1.1 code 4), or, MQTT 5, authenticate with SCRAM-SHA-256/-512 (enhanced authentication) as a user with SCRAM keys. Re-read on SIGHUP. See docs/security.md.' },
  { key: 'authFailuresPerMinute', kind: 'int', min: 0, max: 1_000_000, doc: 'Failed password checks one remote address may have per minute; past it, its CONNECTs are refused without a check (CONNACK 0x9F Connection rate exceeded, 3.1.1 code 3) for the rest of that minute, logged once. 0: no limit. Many devices behind one NAT share an address: raise it for them.' },
  { key: 'aclRules', kind: 'lines', doc: 'ACL rules in the config, in the ACL file\'s format, one line each (`["user alice", "topic readwrite sensors/alice/#", "pattern read devices/%c/down/#"]`). They add to `aclFile`\'s rules as a second file would: a `user` line here does not carry over to the file\'s lines or back, a grant in either allows, a `deny` in either wins. With rules here and no file, nothing is allowed unless a rule grants it. Fixed at start (SIGHUP re-reads the file only).' },
  { key: 'aclFile', kind: 'optional-string', doc: 'ACL file in Mosquitto\'s format (`user`, `topic [read|write|readwrite|deny] FILTER`, `pattern` with `%c` and `%u`): with one, nothing is allowed unless a rule grants it. PUBLISH refused: MQTT 5 PUBACK 0x87, 3.1.1 acknowledged and dropped; SUBSCRIBE refused: 0x87 / 0x80 per filter; a will on a refused topic: CONNACK 0x87. Re-read on SIGHUP.' },
  { key: 'allowAnonymous', kind: 'enum', values: ['auto', 'true', 'false'], doc: 'Clients without a user name (nor, with JWT, a token): `auto` allows them unless `passwordFile` or a JWT key is set; refused ones get CONNACK 0x87 (3.1.1: code 5).' },
  { key: 'jwtSecret', kind: 'optional-string', doc: 'JWT as the MQTT password, signed HS256 with this shared secret (at least 32 bytes). Give it through `IOT_BRIDGE_JWT_SECRET` or the config file rather than a flag, which other users can see in the process list; or use `jwtSecretFile`. One key source at most among `jwtSecret`, `jwtSecretFile`, `jwtPublicKeyFile`, `jwtJwksFile`. See docs/security.md.' },
  { key: 'jwtSecretFile', kind: 'optional-string', doc: 'File holding the HS256 secret of `jwtSecret` (its bytes, without a final line break). Re-read on SIGHUP.' },
  { key: 'jwtPublicKeyFile', kind: 'optional-string', doc: 'PEM public key (or certificate) that verifies JWT passwords: an RSA key for RS256, a P-256 key for ES256. Re-read on SIGHUP.' },
  { key: 'jwtJwksFile', kind: 'optional-string', doc: 'JSON Web Key Set file (`{"keys": [...]}`, RSA and P-256 public keys) that verifies JWT passwords, RS256 or ES256; the token\'s `kid` picks the key. Re-read on SIGHUP (add the new key before issuing tokens with it).' },
  { key: 'jwtUsernameClaim', kind: 'string', doc: 'Claim naming the user of a JWT; the client\'s user name for the ACL. A CONNECT that also carries a user name must carry the same (else CONNACK 0x86 / 3.1.1 code 4).' },
  { key: 'jwtAclClaim', kind: 'string', doc: 'Claim with the topics a JWT may use, `{"pub": [filters], "sub": [filters]}`: when a token has it, its client may publish only to topics the `pub` filters match and subscribe only to filters the `sub` filters cover (a missing list allows nothing), on top of `aclFile`. Refused: PUBACK/SUBACK 0x87 (3.1.1: dropped / 0x80).' },
  { key: 'jwtIssuer', kind: 'optional-string', doc: 'With JWT: the `iss` a token must carry; empty: not checked.' },
  { key: 'jwtAudience', kind: 'optional-string', doc: 'With JWT: the `aud` a token must carry (or list); empty: not checked.' },
  { key: 'jwtClockToleranceSeconds', kind: 'int', min: 0, max: 600, doc: 'With JWT: seconds of clock skew allowed when checking `exp` and `nbf`. A token without `exp` is refused.' },
  { key: 'denySubscribe', kind: 'filters', doc: 'Topic filters no client may subscribe to: a SUBSCRIBE for a filter one of them matches (`a/#` matches `a/b`, `a/+` and `a/#`; a `$share/{group}/` prefix is ignored) gets SUBACK 0x80 (MQTT 5 "Unspecified error", 3.1.1 "Failure"). Wider filters such as `#` are still granted. Empty by default.' },
  { key: 'connectTimeoutMs', kind: 'int', min: 100, max: 600_000, doc: 'A connection without CONNECT after this many ms is closed.' },
  { key: 'maxSessionExpiryInterval', kind: 'int', min: 0, max: U32, doc: 'Cap on the session expiry interval of MQTT 5 clients, seconds.' },
  { key: 'mqtt3SessionExpiryInterval', kind: 'int', min: 0, max: U32, doc: 'Session expiry of MQTT 3.x sessions with clean session 0, seconds (4294967295: never).' },
  { key: 'maxPendingInboundBytes', kind: 'int', min: 1024, max: 1 << 30, doc: 'Payload bytes of one connection\'s PUBLISHes waiting to be stored and acknowledged before the broker stops reading from that connection (TCP backpressure); it reads again when half are acknowledged. The number of waiting requests is bounded by `receiveMaximum` the same way, for MQTT 3.1.1 clients too.' },
  { key: 'maxWriteBuffer', kind: 'int', min: 1024, max: 1 << 30, doc: 'Bytes waiting in a socket before deliveries to it pause (slow consumers).' },
  { key: 'maxQueuedMessages', kind: 'int', min: 1, max: 10_000_000, doc: 'Messages a session may have waiting to be sent before `queueOverflow` applies.' },
  { key: 'maxQueuedBytes', kind: 'int', min: 1024, max: 2 ** 40, doc: 'Payload bytes a session may have waiting before `queueOverflow` applies.' },
  { key: 'queueOverflow', kind: 'enum', values: ['drop-oldest', 'drop-new'], doc: 'What a full session queue drops: its oldest unsent message, or the new one. Drops are logged (rate-limited) and counted in `iotbridge_messages_dropped_total{reason="queue_full"}`.' },
  { key: 'queueQos0Offline', kind: 'bool', doc: 'Queue QoS 0 messages for offline persistent sessions.' },
  { key: 'publishMaxRetries', kind: 'int', min: 0, max: 100, doc: 'Retries of a failed store commit before a publish is refused (MQTT 5: PUBACK/PUBREC 0x80; 3.1.1: the connection is closed so the client re-sends).' },
  { key: 'publishRetryBaseMs', kind: 'int', min: 1, max: 60_000, doc: 'First retry delay, doubled on each retry.' },
  { key: 'publishRetryMaxMs', kind: 'int', min: 1, max: 600_000, doc: 'Largest retry delay.' },
  { key: 'maxPublishRate', kind: 'int', min: 0, max: 10_000_000, doc: 'PUBLISHes per second one client may send, with a burst of one second\'s worth; past it the client is disconnected (MQTT 5: DISCONNECT 0x96 Message rate too high; 3.1.1: closed), logged and counted in `iotbridge_rate_limited_total`. 0: no limit.' },
  { key: 'maxPublishBytesRate', kind: 'int', min: 0, max: 2 ** 40, doc: 'Payload bytes per second one client may publish, likewise (a single PUBLISH larger than this is refused). 0: no limit.' },
  { key: 'maxAuthDataSize', kind: 'int', min: 64, max: 65_535, doc: 'Largest Authentication Data of a CONNECT or AUTH packet (MQTT 5 enhanced authentication, SCRAM), bytes; larger gets CONNACK 0x95 (after the CONNACK, on re-authentication: DISCONNECT 0x95). SCRAM messages are a few hundred bytes at most.' },
];

export const defaultConfig: Config = {
  ...defaultBrokerOptions,
  host: '0.0.0.0',
  port: 1883,
  wsPort: 0,
  tlsPort: 0,
  tlsCertFile: '',
  tlsKeyFile: '',
  tlsCaFile: '',
  tlsCertAsUsername: false,
  tlsCertUsernameField: 'cn',
  adminPort: 0,
  adminToken: '',
  adminAdvertiseUrl: '',
  sysInterval: 0,
  maxConnections: 100_000,
  maxConnectionsPerAddressPerSecond: 0,
  store: 'lmdb',
  processes: 1,
  dataDir: './data',
  durability: 'strict',
  lmdbMapSize: 8 * 1024 ** 3,
  passwordFile: '',
  authFailuresPerMinute: 60,
  aclFile: '',
  aclRules: [],
  allowAnonymous: 'auto',
  jwtSecret: '',
  jwtSecretFile: '',
  jwtPublicKeyFile: '',
  jwtJwksFile: '',
  jwtUsernameClaim: 'sub',
  jwtAclClaim: 'acl',
  jwtIssuer: '',
  jwtAudience: '',
  jwtClockToleranceSeconds: 30,
  logLevel: 'info',
  cluster: false,
  namesrv: '',
  nodeId: '',
  clusterName: 'iotb',
  nodeLeaseMs: 10_000,
  clusterMessageQueues: 8,
  sessionSnapshotRenewMs: 6 * 3_600_000,
  bridgeUplink: [{ filter: '#', topic: '', tag: '' }],
  bridgeDownlink: true,
  bridgeDownlinkTopic: '',
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** `maxPacketSize` → `IOT_BRIDGE_MAX_PACKET_SIZE` */
export function envName(key: string): string {
  return `IOT_BRIDGE_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** `maxPacketSize` → `--max-packet-size` */
export function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

function coerce(spec: OptionSpec, raw: unknown, source: string): Config[keyof Config] {
  const where = `${spec.key} (from ${source})`;
  switch (spec.kind) {
    case 'filters': {
      const list = typeof raw === 'string' ? (raw === '' ? [] : raw.split(',')) : raw;
      if (!Array.isArray(list) || !list.every((f) => typeof f === 'string')) {
        throw new ConfigError(`${where} must be a list of topic filters, got ${JSON.stringify(raw)}`);
      }
      for (const filter of list) {
        const error = topicFilterError(filter);
        if (error) throw new ConfigError(`${where}: ${JSON.stringify(filter)} is not a valid topic filter (${error})`);
      }
      return list;
    }
    case 'lines': {
      const list = typeof raw === 'string' ? (raw === '' ? [] : raw.split(/\r?\n/)) : raw;
      if (!Array.isArray(list) || !list.every((l) => typeof l === 'string')) throw new ConfigError(`${where} must be a list of lines (strings), got ${JSON.stringify(raw)}`);
      return list;
    }
    case 'uplink': {
      const list = typeof raw === 'string' ? (raw === '' ? [] : raw.split(',')) : raw;
      if (!Array.isArray(list) || !list.every((f) => typeof f === 'string')) {
        throw new ConfigError(`${where} must be a list of routes (filter, filter=topic or filter=topic:tag), got ${JSON.stringify(raw)}`);
      }
      return list.map((text) => {
        const route = parseUplinkRoute(text);
        if (typeof route === 'string') throw new ConfigError(`${where}: ${route}`);
        return route;
      });
    }
    case 'int': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (!Number.isInteger(n)) throw new ConfigError(`${where} must be an integer, got ${JSON.stringify(raw)}`);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        throw new ConfigError(`${where} must be between ${spec.min} and ${spec.max}, got ${n}`);
      }
      return n;
    }
    case 'bool':
      if (raw === true || raw === 'true' || raw === '1') return true;
      if (raw === false || raw === 'false' || raw === '0') return false;
      throw new ConfigError(`${where} must be true or false, got ${JSON.stringify(raw)}`);
    case 'enum':
      if (typeof raw !== 'string' || !spec.values!.includes(raw)) {
        throw new ConfigError(`${where} must be one of ${spec.values!.join(', ')}, got ${JSON.stringify(raw)}`);
      }
      return raw as Config[keyof Config];
    case 'string':
      if (typeof raw !== 'string' || raw.length === 0) throw new ConfigError(`${where} must be a non-empty string`);
      return raw;
    case 'optional-string':
      if (typeof raw !== 'string') throw new ConfigError(`${where} must be a string`);
      return raw;
  }
}

/**
 * Builds the configuration: defaults, then the JSON file given by --config, then
 * IOT_BRIDGE_* environment variables, then command-line flags. Unknown keys are errors.
 */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): Config {
  const config: Config = { ...defaultConfig };
  const set = (spec: OptionSpec, raw: unknown, source: string) => {
    (config as unknown as Record<string, unknown>)[spec.key] = coerce(spec, raw, source);
  };
  const byKey = new Map(optionSpecs.map((s) => [s.key as string, s]));
  const byFlag = new Map(optionSpecs.map((s) => [flagName(s.key), s]));

  const flags: [string, string][] = [];
  let configFile = env.IOT_BRIDGE_CONFIG;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument ${arg}`);
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    let value: string | undefined = eq > 0 ? arg.slice(eq + 1) : argv[i + 1];
    if (eq < 0 && byFlag.get(name)?.kind === 'bool' && (value === undefined || value.startsWith('--'))) value = 'true';
    else if (eq < 0) i++;
    if (value === undefined) throw new ConfigError(`${name} needs a value`);
    if (name === '--config') configFile = value;
    else if (byFlag.has(name)) flags.push([name, value]);
    else throw new ConfigError(`unknown option ${name} (see docs/configuration.md)`);
  }

  if (configFile) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(configFile, 'utf8'));
    } catch (e) {
      throw new ConfigError(`cannot read config file ${configFile}: ${(e as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError(`config file ${configFile} must hold a JSON object`);
    }
    for (const [key, value] of Object.entries(parsed)) {
      const spec = byKey.get(key);
      if (!spec) throw new ConfigError(`unknown option "${key}" in ${configFile} (see docs/configuration.md)`);
      set(spec, value, configFile);
    }
  }
  for (const spec of optionSpecs) {
    const value = env[envName(spec.key)];
    if (value !== undefined) set(spec, value, envName(spec.key));
  }
  for (const [name, value] of flags) set(byFlag.get(name)!, value, name);
  if (config.tlsPort > 0 && (!config.tlsCertFile || !config.tlsKeyFile)) {
    throw new ConfigError('tlsPort needs tlsCertFile and tlsKeyFile');
  }
  if (config.processes !== 1 && (config.cluster || config.store !== 'lmdb')) throw new ConfigError('processes other than 1 needs the embedded lmdb store (cluster mode scales by nodes)');
  if (config.tlsCaFile && config.tlsPort === 0) throw new ConfigError('tlsCaFile (client certificates) needs tlsPort');
  if (config.tlsCertAsUsername && !config.tlsCaFile) throw new ConfigError('tlsCertAsUsername needs tlsCaFile: only a certificate verified against it can name the user');
  const jwtKeySources = (['jwtSecret', 'jwtSecretFile', 'jwtPublicKeyFile', 'jwtJwksFile'] as const).filter((k) => config[k] !== '');
  if (jwtKeySources.length > 1) throw new ConfigError(`one JWT key source at most, got ${jwtKeySources.join(' and ')}`);
  if (jwtKeySources.length === 0 && (config.jwtIssuer || config.jwtAudience)) {
    throw new ConfigError('jwtIssuer and jwtAudience need a JWT key: jwtSecret, jwtSecretFile, jwtPublicKeyFile or jwtJwksFile');
  }
  if (config.tlsCertUsernameField !== 'cn' && !config.tlsCertAsUsername) throw new ConfigError('tlsCertUsernameField needs tlsCertAsUsername');
  if (config.aclRules.length > 0) {
    try {
      Acl.parse(config.aclRules.join('\n'), 'aclRules');
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
  }
  if (config.cluster && config.namesrv === '') {
    throw new ConfigError('cluster needs namesrv: the RocketMQ name server(s), e.g. --namesrv 127.0.0.1:9876');
  }
  if (!/^[a-zA-Z0-9_-]{1,32}$/.test(config.clusterName)) {
    throw new ConfigError(`clusterName must be 1 to 32 letters, digits, _ or -, got ${JSON.stringify(config.clusterName)}`);
  }
  if (config.bridgeDownlinkTopic !== '' && !/^[a-zA-Z0-9_-]{1,100}$/.test(config.bridgeDownlinkTopic)) {
    throw new ConfigError(`bridgeDownlinkTopic must be a RocketMQ topic name (1 to 100 letters, digits, _ or -), got ${JSON.stringify(config.bridgeDownlinkTopic)}`);
  }
  if (config.publishRetryMaxMs < config.publishRetryBaseMs) {
    throw new ConfigError('publishRetryMaxMs must not be smaller than publishRetryBaseMs');
  }
  return config;
}
