import { randomUUID } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import type { ConnackPacket, ConnectPacket } from '../../protocol/packets';
import { ReasonCode, connackCodeForV3 } from '../../protocol/reason-codes';
import { topicNameError } from '../../protocol/topics';
import type { StoredWill } from '../../store/types';
import type { Channel } from '../channel';
import type { AuthGrant, TopicLimits } from '../options';
import { authHookStep, runAuthStep } from './auth';
import { messageProperties } from './publish';

type ConnackProperties = NonNullable<ConnackPacket['properties']>;

export function handleConnect(ch: Channel, packet: ConnectPacket): void {
  if (ch.state !== 'awaiting-connect') {
    ch.close(ReasonCode.ProtocolError, 'second CONNECT'); // MQTT-3.1.0-2
    return;
  }
  const version = packet.protocolVersion ?? 4;
  ch.protocolVersion = version;
  const props = packet.properties ?? {};
  const options = ch.options;
  ch.broker.stats.connectionsTotal++;

  if (ch.refusal) return refuse(ch, ch.refusal.reasonCode, ch.refusal.reason);
  const authMethod = version === 5 ? props.authenticationMethod : undefined;
  if (authMethod !== undefined && !ch.broker.hooks.enhancedAuth?.supports(authMethod)) {
    return refuse(ch, ReasonCode.BadAuthenticationMethod, `authentication method ${authMethod} is not supported`);
  }
  const authData = props.authenticationData;
  if (authMethod !== undefined && authData && authData.length > options.maxAuthDataSize) {
    return refuse(ch, ReasonCode.PacketTooLarge, `authentication data of ${authData.length} bytes, more than maxAuthDataSize (${options.maxAuthDataSize})`);
  }
  if (version === 5 && props.receiveMaximum === 0) return refuse(ch, ReasonCode.ProtocolError, 'receive maximum 0');
  if (version === 5 && props.maximumPacketSize === 0) return refuse(ch, ReasonCode.ProtocolError, 'maximum packet size 0');

  let clientId = packet.clientId;
  let assignedClientId: string | undefined;
  if (clientId.length === 0) {
    // 3.1 requires an id; 3.1.1 allows none only with a clean session (MQTT-3.1.3-8).
    if (version === 3 || (version === 4 && !packet.clean)) {
      return refuse(ch, ReasonCode.ClientIdentifierNotValid, 'empty client id needs clean session');
    }
    clientId = `auto-${randomUUID()}`;
    if (version === 5) assignedClientId = clientId;
  }

  let will: StoredWill | undefined;
  if (packet.will) {
    const topicError = topicNameError(packet.will.topic);
    if (topicError) return refuse(ch, ReasonCode.TopicNameInvalid, `will ${topicError}`);
    const payload = typeof packet.will.payload === 'string' ? Buffer.from(packet.will.payload) : packet.will.payload;
    const willProps = packet.will.properties ?? {};
    if (willProps.payloadFormatIndicator && !isUtf8(payload)) {
      return refuse(ch, ReasonCode.PayloadFormatInvalid, 'will payload is not UTF-8');
    }
    const now = ch.broker.clock.now();
    will = {
      delayInterval: willProps.willDelayInterval ?? 0,
      message: {
        topic: packet.will.topic,
        payload,
        qos: packet.will.qos ?? 0,
        retain: packet.will.retain ?? false,
        properties: messageProperties(willProps),
        expiresAt: willProps.messageExpiryInterval !== undefined ? now + willProps.messageExpiryInterval * 1000 : undefined,
        publisherId: clientId,
        createdAt: now,
      },
    };
  }

  const connackProps: ConnackProperties = {};
  let keepAlive = packet.keepalive ?? 0;
  if (version === 5 && options.maxKeepAlive > 0 && (keepAlive === 0 || keepAlive > options.maxKeepAlive)) {
    keepAlive = options.maxKeepAlive;
    connackProps.serverKeepAlive = keepAlive;
  }
  let expiryInterval: number;
  if (version === 5) {
    const requested = props.sessionExpiryInterval ?? 0;
    expiryInterval = Math.min(requested, options.maxSessionExpiryInterval);
    if (expiryInterval !== requested) connackProps.sessionExpiryInterval = expiryInterval;
  } else {
    expiryInterval = packet.clean ? 0 : options.mqtt3SessionExpiryInterval;
  }

  ch.clientId = clientId;
  ch.keepAliveMs = keepAlive * 1000;
  ch.connectExpiryInterval = props.sessionExpiryInterval ?? 0;
  if (version === 5) {
    ch.client = {
      receiveMaximum: props.receiveMaximum ?? 65535,
      maximumPacketSize: props.maximumPacketSize ?? 0x10000000,
      topicAliasMaximum: props.topicAliasMaximum ?? 0,
      requestProblemInformation: props.requestProblemInformation ?? true,
    };
  }
  ch.state = 'authenticating';
  // Mutual TLS with tlsCertAsUsername: the verified certificate names the user, not CONNECT.
  const username = ch.transport.certificateName ?? packet.username;
  const admission: Admission = { clientId, clean: packet.clean ?? true, expiryInterval, will, connackProps, assignedClientId };

  if (authMethod !== undefined) {
    ch.authMethod = authMethod;
    const authenticator = ch.broker.hooks.enhancedAuth!; // supports(authMethod) above
    const step = authHookStep(ch, () => authenticator.start({ method: authMethod, data: authData, clientId, username, remoteAddress: ch.transport.remoteAddress }));
    runAuthStep(ch, step, ch.connectDeadline, (end) => {
      if (end.kind === 'failure') return refuse(ch, end.reasonCode, end.reason);
      // A certificate already named the user: the exchange may not make it someone else.
      const certificateName = ch.transport.certificateName;
      if (certificateName !== undefined && end.username !== certificateName) return refuse(ch, ReasonCode.NotAuthorized, 'authenticated as another user than the certificate names');
      Object.assign(connackProps, { authenticationMethod: authMethod, authenticationData: end.data } satisfies ConnackProperties);
      admit(ch, admission, end.username);
    });
    return;
  }

  Promise.resolve(
    ch.broker.hooks.authenticate({
      clientId,
      username,
      password: packet.password,
      remoteAddress: ch.transport.remoteAddress,
      certificateName: ch.transport.certificateName,
    }),
  ).then(
    (ok) => {
      if (ch.state !== 'authenticating') return;
      if (ok === false) return refuse(ch, ReasonCode.BadUserNameOrPassword, 'authentication failed');
      if (typeof ok === 'number') return refuse(ch, ok, 'not authorized');
      const grant: AuthGrant = ok === true ? {} : ok;
      admit(ch, admission, grant.username ?? username, grant.limits);
    },
    (e: Error) => {
      ch.broker.log.error({ clientId, err: e.message }, 'authentication hook failed');
      refuse(ch, ReasonCode.ServerUnavailable, 'authentication unavailable');
    },
  ).catch((e: Error) => {
    // A throw in admit (an authorization hook) refuses this client; it must not become an unhandled rejection.
    if (ch.state !== 'authenticating') return;
    ch.broker.log.error({ clientId, err: e.message }, 'connection could not be admitted');
    refuse(ch, ReasonCode.ServerUnavailable, 'authorization unavailable');
  });
}

/** What CONNECT asked for, carried from its checks to the CONNACK. */
interface Admission {
  clientId: string;
  clean: boolean;
  expiryInterval: number;
  will: StoredWill | undefined;
  connackProps: ConnackProperties;
  assignedClientId: string | undefined;
}

/**
 * The client is authenticated as `username`, within the topic `limits` its credentials carry:
 * check its will, open its session, send CONNACK.
 */
function admit(ch: Channel, admission: Admission, username: string | undefined, limits?: TopicLimits): void {
  const { clientId, will, connackProps, assignedClientId } = admission;
  const version = ch.protocolVersion;
  const options = ch.options;
  ch.username = username;
  ch.topicLimits = limits;
  // A will is a publish by this client: it may not bypass publish authorization.
  if (will && !ch.mayPublish(will.message.topic)) {
    return refuse(ch, ReasonCode.NotAuthorized, 'will topic not authorized');
  }
  ch.broker.fetchSession(clientId).then(
    () => {
      if (ch.state !== 'authenticating') return;
      const opened = ch.broker.openSession(ch, {
        clientId,
        clean: admission.clean,
        expiryInterval: admission.expiryInterval,
        protocolVersion: ch.protocolVersion,
        will,
      });
      opened.previousOwner?.takenOver();
      ch.session = opened.session;
      opened.durable.then(
        () => {
          if (ch.state !== 'authenticating') return;
          if (version === 5) {
            Object.assign(connackProps, {
              receiveMaximum: options.receiveMaximum,
              maximumPacketSize: options.maxPacketSize,
              topicAliasMaximum: options.topicAliasMaximum,
              retainAvailable: true,
              wildcardSubscriptionAvailable: true,
              subscriptionIdentifiersAvailable: true,
              sharedSubscriptionAvailable: true,
            } satisfies ConnackProperties);
            if (assignedClientId) connackProps.assignedClientIdentifier = assignedClientId;
          }
          const connack: ConnackPacket = { cmd: 'connack', sessionPresent: opened.sessionPresent };
          if (version === 5) {
            connack.reasonCode = ReasonCode.Success;
            connack.properties = connackProps;
          } else connack.returnCode = 0;
          ch.send(connack);
          ch.connected();
          ch.resumeSession();
        },
        (e: Error) => {
          ch.broker.log.error({ clientId, err: e.message }, 'session could not be stored');
          refuse(ch, ReasonCode.ServerUnavailable, 'session store unavailable');
        },
      );
    },
    (e: Error) => {
      if (ch.state !== 'authenticating') return;
      ch.broker.log.error({ clientId, err: e.message }, 'session could not be opened');
      refuse(ch, ReasonCode.ServerUnavailable, 'session store unavailable');
    },
  );
}

/** Answers CONNECT with a refusal and closes (MQTT-3.2.2-5: session present is 0). */
/** Answers CONNECT with a refusal (MQTT 5 reason code, 3.1.1 return code) and closes. */
export function refuse(ch: Channel, reasonCode: number, reason: string): void {
  ch.broker.stats.connectionsRefused++;
  ch.broker.log.debug({ clientId: ch.clientId, reasonCode, reason }, 'connection refused');
  if (ch.protocolVersion === 5) {
    ch.send({ cmd: 'connack', sessionPresent: false, reasonCode, properties: { reasonString: reason } });
  } else {
    ch.send({ cmd: 'connack', sessionPresent: false, returnCode: connackCodeForV3(reasonCode) });
  }
  ch.close();
}
