import type { AuthPacket } from '../../protocol/packets';
import { ReasonCode } from '../../protocol/reason-codes';
import type { Channel } from '../channel';
import type { EnhancedAuthStep } from '../options';
import { refuse } from './connect';

type FinalStep = Exclude<EnhancedAuthStep, { kind: 'continue' }>;

/** An enhanced authentication exchange (MQTT 5 §4.12) waiting for the client's next AUTH. */
export interface PendingAuth {
  next(data: Buffer | undefined): EnhancedAuthStep;
  /** The clock time by which the client must have answered (Channel.tick enforces it). */
  deadline: number;
  finish(step: FinalStep): void;
}

/**
 * Calls the enhancedAuth hook: an exception in it (a bug) refuses this client, 0x80, and never
 * escapes into the socket's event handler.
 */
export function authHookStep(ch: Channel, step: () => EnhancedAuthStep): EnhancedAuthStep {
  try {
    return step();
  } catch (e) {
    ch.broker.log.error({ clientId: ch.clientId, err: (e as Error).message }, 'enhanced authentication hook failed');
    return { kind: 'failure', reasonCode: ReasonCode.UnspecifiedError, reason: 'authentication unavailable' };
  }
}

/**
 * Runs an exchange from the step given: while it continues, sends AUTH 0x18 and waits for the
 * client's answer (at most one exchange per connection at a time); at its end calls `finish`.
 */
export function runAuthStep(ch: Channel, step: EnhancedAuthStep, deadline: number, finish: (step: FinalStep) => void): void {
  if (step.kind !== 'continue') {
    ch.pendingAuth = undefined;
    finish(step);
    return;
  }
  ch.pendingAuth = { next: step.next, deadline, finish };
  ch.send({ cmd: 'auth', reasonCode: ReasonCode.ContinueAuthentication, properties: { authenticationMethod: ch.authMethod, authenticationData: step.data } });
}

/**
 * AUTH from the client: the next message of a pending exchange (0x18), or the start of a
 * re-authentication once connected (0x19), always with the method of CONNECT. Anything else is a
 * protocol error: CONNACK 0x82 before the CONNACK, DISCONNECT 0x82 after.
 */
export function handleAuth(ch: Channel, packet: AuthPacket): void {
  const method = packet.properties?.authenticationMethod;
  const data = packet.properties?.authenticationData;
  const code = packet.reasonCode ?? ReasonCode.Success;
  if (ch.authMethod === undefined) return endAuth(ch, ReasonCode.ProtocolError, 'AUTH without an authentication method in CONNECT');
  if (method !== ch.authMethod) return endAuth(ch, ReasonCode.ProtocolError, `AUTH with method ${JSON.stringify(method ?? '')}, CONNECT used ${ch.authMethod}`);
  if (data && data.length > ch.options.maxAuthDataSize) {
    return endAuth(ch, ReasonCode.PacketTooLarge, `authentication data of ${data.length} bytes, more than maxAuthDataSize (${ch.options.maxAuthDataSize})`);
  }
  const pending = ch.pendingAuth;
  if (pending) {
    if (code !== ReasonCode.ContinueAuthentication) return endAuth(ch, ReasonCode.ProtocolError, `AUTH 0x${code.toString(16)} while an exchange waits for 0x18`);
    return runAuthStep(ch, authHookStep(ch, () => pending.next(data)), pending.deadline, pending.finish);
  }
  if (ch.state === 'connected' && code === ReasonCode.ReAuthenticate) return reauthenticate(ch, method, data);
  endAuth(ch, ReasonCode.ProtocolError, `AUTH 0x${code.toString(16)} out of sequence`);
}

/**
 * Re-authentication (MQTT 5 §4.12.1): the same method, the same user. The connection carries on
 * meanwhile; success is AUTH 0x00, a failure DISCONNECT 0x87 (0x86 is not a DISCONNECT code).
 */
function reauthenticate(ch: Channel, method: string, data: Buffer | undefined): void {
  const authenticator = ch.broker.hooks.enhancedAuth;
  if (!authenticator?.supports(method)) return endAuth(ch, ReasonCode.NotAuthorized, `authentication method ${method} is no longer offered`);
  const step = authHookStep(ch, () => authenticator.start({ method, data, clientId: ch.clientId, username: ch.username, remoteAddress: ch.transport.remoteAddress }));
  runAuthStep(ch, step, ch.lastReceivedAt + ch.options.connectTimeoutMs, (end) => {
    if (end.kind === 'failure') return endAuth(ch, end.reasonCode, `re-authentication failed: ${end.reason}`);
    if (end.username !== ch.username) return endAuth(ch, ReasonCode.NotAuthorized, 're-authentication as another user');
    ch.send({ cmd: 'auth', reasonCode: ReasonCode.Success, properties: { authenticationMethod: method, authenticationData: end.data } });
  });
}

/** The exchange was not finished by its deadline (from Channel.tick). */
export function expireAuth(ch: Channel): void {
  endAuth(ch, ReasonCode.NotAuthorized, `authentication exchange not finished within connectTimeoutMs (${ch.options.connectTimeoutMs} ms)`);
}

/**
 * Ends the connection over authentication: before the CONNACK with a refusing CONNACK, after it
 * with DISCONNECT, whose codes exclude 0x86 and 0x8C (mapped to 0x87 Not authorized).
 */
function endAuth(ch: Channel, reasonCode: number, reason: string): void {
  ch.pendingAuth = undefined;
  if (ch.state !== 'connected') return refuse(ch, reasonCode, reason);
  const disconnectCode = reasonCode === ReasonCode.BadUserNameOrPassword || reasonCode === ReasonCode.BadAuthenticationMethod ? ReasonCode.NotAuthorized : reasonCode;
  ch.broker.log.info({ clientId: ch.clientId, username: ch.username, reasonCode: disconnectCode, reason }, 'disconnected over authentication');
  ch.close(disconnectCode, reason);
}
