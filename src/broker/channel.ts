import { PacketDecoder, encodePacket } from '../protocol/codec';
import { MqttError } from '../protocol/errors';
import type { Packet, ProtocolVersion, PublishPacket } from '../protocol/packets';
import { ReasonCode } from '../protocol/reason-codes';
import type { Broker } from './broker';
import type { TopicLimits } from './options';
import { dispatch } from './handlers';
import { expireAuth, type PendingAuth } from './handlers/auth';
import { refuse as refuseConnect } from './handlers/connect';
import type { OutboundEntry } from './outbound-queue';
import type { Session, SessionOwner } from './session';

/** What the channel needs from its connection: the socket side lives in transport/. */
export interface Transport {
  write(data: Buffer): void;
  /** Flushes what was written, then closes. */
  close(): void;
  readonly bufferedBytes: number;
  readonly remoteAddress: string;
  /** Mutual TLS with `tlsCertAsUsername`: the verified client certificate's CN (or SAN), which is the client's user name. */
  readonly certificateName?: string;
  /** Stop reading from the connection (TCP backpressure) until `resume`. */
  pause(): void;
  resume(): void;
}

/** Why a connection is refused before its CONNECT is read (a limit the listener saw): answered in CONNACK. */
export interface ConnectRefusal {
  reasonCode: number;
  reason: string;
}

export type ChannelState = 'awaiting-connect' | 'authenticating' | 'connected' | 'closed';

/** An acknowledgement waiting for its turn: acks leave in the order their requests came in. */
export interface PendingReply {
  packet: Packet | null;
  ready: boolean;
  closeAfter: boolean;
  /** Payload bytes of the request, held until the reply goes out. */
  bytes: number;
}

/** The limits the client announced in CONNECT (MQTT 5), with 3.1.1 defaults. */
export interface ClientLimits {
  receiveMaximum: number;
  maximumPacketSize: number;
  topicAliasMaximum: number;
  requestProblemInformation: boolean;
}

/**
 * What a client may send behind its CONNECT before the CONNACK, held until then. Reading pauses
 * once CONNECT is in, so over TCP only the rest of that read is held; one WebSocket message can
 * carry much more. Past either bound the connection is refused with 0x97 (Quota exceeded).
 */
const MAX_PACKETS_BEFORE_CONNACK = 1000;
const MAX_BYTES_BEFORE_CONNACK = 1024 * 1024;

/** Bytes a held packet keeps in memory, near enough to bound them: its payload and topic(s) and a fixed overhead. */
function heldBytes(packet: Packet): number {
  let n = 64;
  if ('payload' in packet && packet.payload) n += packet.payload.length;
  if ('topic' in packet && typeof packet.topic === 'string') n += packet.topic.length;
  if ('subscriptions' in packet && Array.isArray(packet.subscriptions)) for (const s of packet.subscriptions) n += 16 + s.topic.length;
  if ('unsubscriptions' in packet && Array.isArray(packet.unsubscriptions)) for (const t of packet.unsubscriptions) n += 16 + t.length;
  return n;
}

/**
 * The per-connection MQTT state machine. Bytes and clock ticks come in; packets to write
 * and the decision to close go out through the Transport. It holds no socket, so tests
 * drive it directly. Packet handling lives in handlers/, one module per packet type.
 */
export class Channel implements SessionOwner {
  state: ChannelState = 'awaiting-connect';
  protocolVersion: ProtocolVersion = 4;
  session: Session | null = null;
  clientId = '';
  /** The user name the client authenticated with (CONNECT, or what its credentials prove), for authorization. */
  username: string | undefined;
  /** Topic limits its credentials carry (a JWT's topics claim), on top of the hooks' rules. */
  topicLimits: TopicLimits | undefined;
  keepAliveMs = 0;
  lastReceivedAt: number;
  readonly connectDeadline: number;
  client: ClientLimits = { receiveMaximum: 65535, maximumPacketSize: 0x10000000, topicAliasMaximum: 0, requestProblemInformation: true };
  /** MQTT 5 enhanced authentication: CONNECT's Authentication Method, which every AUTH must repeat. */
  authMethod: string | undefined;
  /** The enhanced authentication exchange waiting for the client's next AUTH, if any (one at a time). */
  pendingAuth: PendingAuth | undefined;
  /** Session expiry requested at CONNECT: DISCONNECT may not raise it from 0. */
  connectExpiryInterval = 0;
  /** Token buckets of maxPublishRate / maxPublishBytesRate, refilled from the clock on each PUBLISH. */
  publishTokens = 0;
  publishByteTokens = 0;
  publishTokensAt = 0;
  /** QoS 1/2 PUBLISHes received and not yet completed (MQTT 5 Receive Maximum). */
  inboundInflight = 0;
  /** QoS 2 packet ids counted in inboundInflight: ids carried over from an earlier connection are not. */
  private inboundQos2Ids: Set<number> | undefined;
  private inboundAliasMap: Map<number, string> | undefined;
  private outboundAliasMap: Map<string, number> | undefined;
  // Made on first use: most connections never use aliases or QoS 2, and an idle connection's
  // memory is mostly such empty tables.
  get inboundQos2Counted(): Set<number> {
    return (this.inboundQos2Ids ??= new Set());
  }
  get inboundAliases(): Map<number, string> {
    return (this.inboundAliasMap ??= new Map());
  }
  get outboundAliases(): Map<string, number> {
    return (this.outboundAliasMap ??= new Map());
  }
  private readonly decoder: PacketDecoder;
  private readonly replies: PendingReply[] = [];
  /** Payload bytes of the requests whose replies wait. */
  private pendingBytes = 0;
  private inputPaused = false;
  private readonly heldPackets: Packet[] = [];
  private heldPacketBytes = 0;
  /** Deliveries in flight when the session was last connected, not yet re-sent on this connection. */
  private readonly resend: OutboundEntry[] = [];

  constructor(
    readonly broker: Broker,
    readonly transport: Transport,
    now: number,
    /** Set when a connection limit is reached: CONNECT is answered with this refusal. */
    readonly refusal?: ConnectRefusal,
  ) {
    this.decoder = new PacketDecoder(broker.options.maxPacketSize);
    this.lastReceivedAt = now;
    this.connectDeadline = now + broker.options.connectTimeoutMs;
  }

  get options() {
    return this.broker.options;
  }

  /** The hooks' rules, then the limits of the client's credentials. */
  mayPublish(topic: string): boolean {
    return this.broker.hooks.authorizePublish(this.clientId, topic, this.username) && (this.topicLimits?.canPublish(topic) ?? true);
  }

  maySubscribe(filter: string): boolean {
    return this.broker.hooks.authorizeSubscribe(this.clientId, filter, this.username) && (this.topicLimits?.canSubscribe(filter) ?? true);
  }

  // ---- input --------------------------------------------------------------------------------

  receive(chunk: Buffer, now = this.broker.clock.now()): void {
    if (this.state === 'closed') return;
    this.lastReceivedAt = now;
    let packets: Packet[];
    try {
      packets = this.decoder.push(chunk);
    } catch (e) {
      this.onDecodeError(e as Error);
      return;
    }
    for (const packet of packets) {
      if ((this.state as ChannelState) === 'closed') return; // a handler may have closed it
      this.handle(packet);
    }
    this.updateInput();
  }

  /**
   * Reading stops while the client waits for its CONNACK (nothing after CONNECT is handled
   * before it, except the AUTH packets of an enhanced authentication exchange) and while too many
   * of its requests wait for the store, in count or bytes; it starts again once half of them are
   * answered. What one read brought is still handled: a read is at most one socket chunk.
   */
  private updateInput(): void {
    if (this.state === 'closed') return;
    const replies = this.replies.length;
    const limit = this.options.receiveMaximum;
    const bytesLimit = this.options.maxPendingInboundBytes;
    const awaitingConnack = this.state === 'authenticating' && this.pendingAuth === undefined;
    if (!this.inputPaused) {
      if (awaitingConnack || replies >= limit || this.pendingBytes >= bytesLimit) {
        this.inputPaused = true;
        this.transport.pause();
      }
    } else if (!awaitingConnack && replies <= limit / 2 && this.pendingBytes <= bytesLimit / 2) {
      this.inputPaused = false;
      this.transport.resume();
    }
  }

  handle(packet: Packet): void {
    if (this.state === 'authenticating' && packet.cmd !== 'auth') {
      // MQTT 5 §3.1.4: nothing after CONNECT but AUTH is processed until the client is authenticated.
      this.heldPacketBytes += heldBytes(packet);
      if (this.heldPackets.length >= MAX_PACKETS_BEFORE_CONNACK || this.heldPacketBytes > MAX_BYTES_BEFORE_CONNACK) {
        this.heldPackets.length = 0;
        refuseConnect(this, ReasonCode.QuotaExceeded, `more than ${MAX_PACKETS_BEFORE_CONNACK} packets or ${MAX_BYTES_BEFORE_CONNACK} bytes sent before CONNACK`);
      } else this.heldPackets.push(packet);
      return;
    }
    if (this.state === 'awaiting-connect' && packet.cmd !== 'connect') {
      this.close(); // MQTT-3.1.0-1: the first packet must be CONNECT
      return;
    }
    dispatch(this, packet);
  }

  /** Called by the CONNECT handler once CONNACK is out. */
  connected(): void {
    this.state = 'connected';
    this.heldPacketBytes = 0;
    for (const packet of this.heldPackets.splice(0)) {
      if (this.state !== 'connected') return;
      dispatch(this, packet);
    }
    this.updateInput();
  }

  tick(now: number): void {
    if (this.pendingAuth && this.state !== 'closed' && now > this.pendingAuth.deadline) {
      expireAuth(this);
      return;
    }
    if (this.state === 'awaiting-connect' || this.state === 'authenticating') {
      if (now > this.connectDeadline) this.close();
      return;
    }
    if (this.state !== 'connected') return;
    // While the broker does not read, the client's packets wait in the socket: not its silence.
    if (this.inputPaused) this.lastReceivedAt = now;
    if (this.keepAliveMs > 0 && now - this.lastReceivedAt > this.keepAliveMs * 1.5) {
      this.close(ReasonCode.KeepAliveTimeout);
      return;
    }
    this.pump(); // transports without a drain event (WebSocket) resume here

  }

  /** The socket ended or failed without a DISCONNECT: an ungraceful disconnect. */
  transportClosed(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.detachSession(false);
  }

  private onDecodeError(e: Error): void {
    this.broker.stats.malformedPackets++;
    const code = e instanceof MqttError ? e.reasonCode : ReasonCode.MalformedPacket;
    this.broker.log.debug({ clientId: this.clientId, err: e.message }, 'bad packet, closing');
    if (this.state === 'awaiting-connect' && code === ReasonCode.UnsupportedProtocolVersion) {
      this.send({ cmd: 'connack', returnCode: 1, sessionPresent: false });
    }
    this.close(code, e.message);
  }

  // ---- output ---------------------------------------------------------------------------------

  send(packet: Packet): void {
    if (this.state === 'closed') return;
    let bytes: Buffer;
    try {
      bytes = encodePacket(packet, this.protocolVersion);
    } catch (e) {
      // Input is validated on the way in, so this is a bug; it costs this connection, never the process.
      this.broker.log.error({ clientId: this.clientId, cmd: packet.cmd, err: (e as Error).message }, 'packet could not be encoded, closing');
      this.close(ReasonCode.ImplementationSpecificError);
      return;
    }
    this.transport.write(bytes);
  }

  /** Reserves the next reply slot; `fill` it when the reply may go out. */
  reserveReply(bytes = 0): PendingReply {
    const slot: PendingReply = { packet: null, ready: false, closeAfter: false, bytes };
    this.replies.push(slot);
    this.pendingBytes += bytes;
    return slot;
  }

  /** Completes a slot (with a packet, or none) and sends every completed reply at the head, in order. */
  fill(slot: PendingReply, packet: Packet | null, closeAfter = false): void {
    slot.packet = packet;
    slot.ready = true;
    slot.closeAfter = closeAfter;
    while (this.replies.length > 0 && this.replies[0].ready) {
      const next = this.replies.shift()!;
      this.pendingBytes -= next.bytes;
      if (next.packet) this.send(next.packet);
      if (next.closeAfter) {
        this.close();
        return;
      }
    }
    if (this.inputPaused) this.updateInput();
  }

  /** Closes the connection. With a reason code, MQTT 5 clients first get a DISCONNECT. */
  close(reasonCode?: number, reasonString?: string): void {
    if (this.state === 'closed') return;
    if (reasonCode !== undefined && this.protocolVersion === 5 && this.state === 'connected') {
      const properties = reasonString && this.client.requestProblemInformation ? { reasonString } : undefined;
      const packet: Packet = { cmd: 'disconnect', reasonCode, properties };
      // MQTT-3.14.2-3: no reason string if it would make the packet too large for the client.
      if (properties && encodePacket(packet, 5).length > this.client.maximumPacketSize) packet.properties = undefined;
      this.send(packet);
    }
    this.state = 'closed';
    this.transport.close();
    this.detachSession(false);
  }

  /** A client DISCONNECT: graceful unless its reason code is not 0x00 (0x04 asks for the will). */
  closeByClient(graceful: boolean, expiryInterval?: number): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.transport.close();
    this.detachSession(graceful, expiryInterval);
  }

  kick(): void {
    this.close(ReasonCode.AdministrativeAction, 'disconnected by an administrator');
  }

  takenOver(): void {
    if (this.state === 'closed') return;
    if (this.protocolVersion === 5) this.send({ cmd: 'disconnect', reasonCode: ReasonCode.SessionTakenOver });
    this.state = 'closed';
    this.session = null; // the broker has handed it to the new connection
    this.transport.close();
  }

  private detachSession(graceful: boolean, expiryInterval?: number): void {
    const session = this.session;
    this.session = null;
    if (session) this.broker.closeSession(session, this, graceful, expiryInterval);
  }

  /** Drain from the socket: continue delivering. */
  drained(): void {
    this.pump();
  }

  // ---- deliveries to the client ---------------------------------------------------------------

  /** Re-sends what was in flight when the session was last connected (G3, G4). */
  resumeSession(): void {
    const session = this.session;
    if (!session) return;
    for (const entry of session.outbound.sentUnfinished()) {
      if (entry.state === 'pubrec') this.send({ cmd: 'pubrel', messageId: entry.packetId });
      else this.resend.push(entry);
    }
    this.pump();
  }

  pump(): void {
    const session = this.session;
    if (this.state !== 'connected' || !session) return;
    const queue = session.outbound;
    const window = Math.min(this.client.receiveMaximum, this.options.maxInflight);
    // First the PUBLISHes in flight before this connection, within the client's Receive Maximum.
    if (this.resend.length > 0 && !this.pumpResends(session, window)) return;
    const now = this.broker.clock.now();
    const hooks = this.broker.hooks;
    while (this.transport.bufferedBytes < this.options.maxWriteBuffer) {
      const entry = queue.peekUnsent();
      if (!entry) return;
      if (entry.qos > 0 && queue.inflightCount >= window) return;
      if (entry.message.expiresAt !== undefined && entry.message.expiresAt <= now) {
        this.broker.stats.messagesDroppedExpired++;
        this.broker.finishDelivery(session, entry);
        continue;
      }
      if (hooks.authorizeRead && !hooks.authorizeRead(this.clientId, entry.message.topic, this.username)) {
        this.broker.stats.messagesDroppedNotAuthorized++;
        this.broker.finishDelivery(session, entry);
        continue;
      }
      if (entry.qos > 0 && queue.inflightEntry(entry.packetId) !== undefined) return; // wait until that id is free
      const packet = this.publishPacket(entry, false);
      if (!packet) {
        this.broker.finishDelivery(session, entry);
        continue;
      }
      this.broker.markSent(session, entry);
      this.send(packet);
    }
  }

  /** Re-sends what was in flight before this connection; false while some still wait for room. */
  private pumpResends(session: Session, window: number): boolean {
    const queue = session.outbound;
    let waiting = this.resend.filter((e) => !e.done && e.state === 'queued').length;
    while (this.resend.length > 0) {
      if (this.transport.bufferedBytes >= this.options.maxWriteBuffer) return false;
      const entry = this.resend[0];
      const live = !entry.done && entry.state === 'queued'; // else acknowledged (or released) meanwhile
      if (live && queue.inflightCount - waiting >= window) return false;
      this.resend.shift();
      if (!live) continue;
      waiting--;
      const packet = this.publishPacket(entry, true);
      if (packet) this.send(packet);
      else this.broker.finishDelivery(session, entry); // too large for this connection: discard (MQTT-3.1.2-25)
    }
    return true;
  }

  /** Builds the PUBLISH for a delivery, or null when it exceeds the client's maximum packet size. */
  private publishPacket(entry: OutboundEntry, dup: boolean): PublishPacket | null {
    const message = entry.message;
    const packet: PublishPacket = {
      cmd: 'publish',
      topic: message.topic,
      payload: message.payload,
      qos: entry.qos,
      dup,
      retain: entry.retainAsPublished ? message.retain : false,
    };
    if (entry.qos > 0) packet.messageId = entry.packetId;
    if (this.protocolVersion === 5) {
      const properties: NonNullable<PublishPacket['properties']> = { ...message.properties };
      if (entry.subscriptionIds.length > 0) properties.subscriptionIdentifier = entry.subscriptionIds;
      if (message.expiresAt !== undefined) {
        properties.messageExpiryInterval = Math.max(1, Math.ceil((message.expiresAt - this.broker.clock.now()) / 1000));
      }
      const aliasLimit = Math.min(this.client.topicAliasMaximum, this.options.topicAliasMaximum);
      if (aliasLimit > 0 && !dup) {
        const alias = this.outboundAliases.get(message.topic);
        if (alias !== undefined) {
          packet.topic = '';
          properties.topicAlias = alias;
        } else if (this.outboundAliases.size < aliasLimit) {
          const next = this.outboundAliases.size + 1;
          this.outboundAliases.set(message.topic, next);
          properties.topicAlias = next;
        }
      }
      packet.properties = properties;
    }
    if (this.client.maximumPacketSize < 0x10000000) {
      const size = encodePacket(packet, this.protocolVersion).length;
      if (size > this.client.maximumPacketSize) {
        this.broker.stats.messagesDroppedTooLarge++;
        if (packet.properties?.topicAlias !== undefined && packet.topic !== '') this.outboundAliases.delete(message.topic);
        return null;
      }
    }
    return packet;
  }
}
