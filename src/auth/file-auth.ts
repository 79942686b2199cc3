// The broker's authentication and authorization from files: a password file (password-file.ts),
// JWT keys (jwt.ts) and an ACL file (acl.ts), all re-read on `reload()` (the CLI calls it on
// SIGHUP). A file that does not parse at start stops the broker; at a reload the previous rules
// and keys stay and the error is logged, so a typo never opens the broker.
//
// With both a password file and JWT keys, a password that looks like a JWT (three base64url
// parts) is checked as a token, any other against the password file. With a password file, MQTT 5
// clients may also authenticate with SCRAM-SHA-256/-512 (scram.ts) against the file's SCRAM lines.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type { AuthDecision, AuthRequest, BrokerHooks, EnhancedAuthRequest, EnhancedAuthStep, EnhancedAuthenticator, Logger } from '../broker/options';
import { MqttError } from '../protocol/errors';
import { ReasonCode } from '../protocol/reason-codes';
import { Acl } from './acl';
import { type JwtOptions, JwtVerifier, jwtConfigured, looksLikeJwt } from './jwt';
import { PasswordFile } from './password-file';
import { type ScramMechanism, type ScramServerState, decoyCredentials, isScramMechanism, parseClientFirst, scramServerFinal, scramServerFirst } from './scram';

export interface FileAuthOptions extends JwtOptions {
  /** Path of the password file; '' for none. */
  passwordFile: string;
  /** Path of the ACL file; '' for none. */
  aclFile: string;
  /** ACL rules from the config, in the file's format; with neither these nor a file, everything is allowed. */
  aclRules: string[];
  /** 'auto': anonymous clients allowed unless a password file or a JWT key is configured. */
  allowAnonymous: 'auto' | 'true' | 'false';
  /** Failed password checks one address may have per minute; past it, its CONNECTs are refused unchecked (0 = no limit). */
  authFailuresPerMinute: number;
}

const WINDOW_MS = 60_000;
/** Addresses tracked at most: past it, those whose window ended are forgotten. */
const MAX_TRACKED_ADDRESSES = 50_000;

export class FileAuth implements BrokerHooks {
  private passwords: PasswordFile | undefined;
  private acl: Acl | undefined;
  private jwt: JwtVerifier | undefined;
  /** Refusals by reason, for metrics and tests. */
  readonly refused = { badPassword: 0, badToken: 0, anonymous: 0, throttled: 0 };
  /** Failed checks per remote address (without its port) in the current minute. */
  private readonly failures = new Map<string, { since: number; count: number; logged: boolean }>();
  /** Makes the decoy salts of users without SCRAM keys: stable within a process, unguessable. */
  private readonly decoySecret = randomBytes(32);

  /** SCRAM-SHA-256 and SCRAM-SHA-512, offered while a password file is configured. */
  readonly enhancedAuth: EnhancedAuthenticator = {
    supports: (method) => this.passwords !== undefined && isScramMechanism(method),
    start: (req) => this.startScram(req),
  };

  constructor(
    private readonly options: FileAuthOptions,
    private readonly log: Logger,
  ) {
    this.load();
  }

  /** Re-reads every file; on an error keeps the rules and keys it had and returns the error. */
  reload(): Error | undefined {
    try {
      this.load();
      const o = this.options;
      this.log.info({ passwordFile: o.passwordFile || undefined, aclFile: o.aclFile || undefined, jwtKeys: o.jwtSecretFile || o.jwtPublicKeyFile || o.jwtJwksFile || undefined }, 'authentication files reloaded');
      return undefined;
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'authentication files not reloaded; the previous rules stay');
      return e as Error;
    }
  }

  private load(): void {
    const o = this.options;
    const passwords = o.passwordFile ? PasswordFile.parse(fs.readFileSync(o.passwordFile, 'utf8'), o.passwordFile) : undefined;
    const fileAcl = o.aclFile ? Acl.parse(fs.readFileSync(o.aclFile, 'utf8'), o.aclFile) : undefined;
    const configAcl = o.aclRules.length > 0 ? Acl.parse(o.aclRules.join('\n'), 'aclRules') : undefined;
    const acl = fileAcl && configAcl ? fileAcl.with(configAcl) : (fileAcl ?? configAcl);
    const jwt = jwtConfigured(o) ? JwtVerifier.load(o) : undefined;
    this.passwords = passwords;
    this.acl = acl;
    this.jwt = jwt;
  }

  private get anonymousAllowed(): boolean {
    return this.options.allowAnonymous === 'auto' ? this.passwords === undefined && this.jwt === undefined : this.options.allowAnonymous === 'true';
  }

  /**
   * The server-first-message for a client-first-message. A user without SCRAM keys for the
   * mechanism (unknown, or with only a scrypt/Mosquitto hash) gets decoy credentials and fails
   * at the proof, like a wrong password: the exchange does not tell which users exist.
   */
  private startScram(req: EnhancedAuthRequest): EnhancedAuthStep {
    const mechanism = req.method as ScramMechanism; // supports() admitted only SCRAM mechanisms
    const passwords = this.passwords;
    if (!passwords) return { kind: 'failure', reasonCode: ReasonCode.BadAuthenticationMethod, reason: 'no password file' };
    const address = hostOf(req.remoteAddress);
    if (this.throttled(address, Date.now())) return { kind: 'failure', reasonCode: ReasonCode.ConnectionRateExceeded, reason: 'too many failed logins from this address' };
    if (!req.data) return { kind: 'failure', reasonCode: ReasonCode.NotAuthorized, reason: `${mechanism} needs the client-first-message as Authentication Data` };
    try {
      const clientFirst = parseClientFirst(req.data.toString('utf8'));
      // n= empty or "*" (node-postgres sends "*"): the user is the MQTT User Name.
      const user = clientFirst.user === '' || clientFirst.user === '*' ? req.username : clientFirst.user;
      if (user === undefined) return { kind: 'failure', reasonCode: ReasonCode.BadUserNameOrPassword, reason: 'SCRAM: n=* without a User Name in CONNECT' };
      const credentials = passwords.scramCredentials(user, mechanism);
      const { state, message } = scramServerFirst({
        mechanism,
        clientFirst,
        user,
        credentials: credentials ?? decoyCredentials(mechanism, user, this.decoySecret),
        known: credentials !== undefined,
        serverNonce: randomBytes(18).toString('base64'),
      });
      return { kind: 'continue', data: Buffer.from(message), next: (data) => this.finishScram(state, data, req) };
    } catch (e) {
      return this.scramFailure(e, req, undefined);
    }
  }

  private finishScram(state: ScramServerState, data: Buffer | undefined, req: EnhancedAuthRequest): EnhancedAuthStep {
    try {
      const serverFinal = scramServerFinal(state, data?.toString('utf8') ?? '');
      return { kind: 'success', username: state.user, data: Buffer.from(serverFinal) };
    } catch (e) {
      return this.scramFailure(e, req, state.user);
    }
  }

  private scramFailure(e: unknown, req: EnhancedAuthRequest, user: string | undefined): EnhancedAuthStep {
    if (!(e instanceof MqttError)) throw e;
    this.countFailure(hostOf(req.remoteAddress), Date.now());
    this.refused.badPassword++;
    this.log.info({ clientId: req.clientId, username: user, remoteAddress: req.remoteAddress, method: req.method, reason: e.message }, 'connection refused: SCRAM authentication failed');
    return { kind: 'failure', reasonCode: e.reasonCode, reason: e.message };
  }

  async authenticate(req: AuthRequest): Promise<AuthDecision> {
    // With JWT, a token is a credential also without a user name (MQTT 5 allows a password alone).
    const token = this.jwt && req.password !== undefined && (!this.passwords || looksLikeJwt(req.password)) ? req.password : undefined;
    if (req.username === undefined && token === undefined) {
      if (this.anonymousAllowed) return true;
      this.refused.anonymous++;
      this.log.info({ clientId: req.clientId, remoteAddress: req.remoteAddress }, 'connection refused: anonymous clients are not allowed');
      return ReasonCode.NotAuthorized;
    }
    // The TLS handshake proved this name with a certificate from the configured CA.
    if (req.certificateName !== undefined && req.certificateName === req.username) return true;
    if (!this.passwords && !this.jwt) return true; // a user name without a password file to check it against, as Mosquitto does
    const address = hostOf(req.remoteAddress);
    const now = Date.now();
    // Guessing: refused without running the KDF, so a flood costs neither CPU nor the thread pool.
    if (this.throttled(address, now)) return ReasonCode.ConnectionRateExceeded;
    if (this.jwt && (token !== undefined || !this.passwords)) return this.checkToken(this.jwt, token, req, address, now);
    const ok = this.passwords !== undefined && req.username !== undefined && (await this.passwords.verify(req.username, req.password ?? Buffer.alloc(0)));
    if (!ok) {
      this.countFailure(address, now);
      this.refused.badPassword++;
      // Never the password: the user name, the client and where it came from.
      this.log.info({ clientId: req.clientId, username: req.username, remoteAddress: req.remoteAddress }, 'connection refused: bad user name or password');
    }
    return ok;
  }

  private async checkToken(jwt: JwtVerifier, token: Buffer | undefined, req: AuthRequest, address: string, now: number): Promise<AuthDecision> {
    const checked = token === undefined ? { ok: false as const, reason: 'no token (the password is the JWT)' } : await jwt.check(token, req.username);
    if (checked.ok) return { username: checked.username, limits: checked.limits };
    this.countFailure(address, now);
    this.refused.badToken++;
    // Never the token: why it was refused, the client and where it came from.
    this.log.info({ clientId: req.clientId, username: req.username, remoteAddress: req.remoteAddress, reason: checked.reason }, 'connection refused: bad JWT');
    return false;
  }

  /** Whether `address` failed `authFailuresPerMinute` times this minute (counted and logged once a minute). */
  private throttled(address: string, now: number): boolean {
    const seen = this.failures.get(address);
    const limit = this.options.authFailuresPerMinute;
    if (!(limit > 0 && seen && now - seen.since < WINDOW_MS && seen.count >= limit)) return false;
    this.refused.throttled++;
    if (!seen.logged) {
      seen.logged = true;
      this.log.warn({ remoteAddress: address, failures: seen.count, limitPerMinute: limit }, 'too many failed logins from this address: refusing its CONNECTs for the rest of the minute');
    }
    return true;
  }

  private countFailure(address: string, now: number): void {
    const seen = this.failures.get(address);
    if (seen && now - seen.since < WINDOW_MS) {
      seen.count++;
      return;
    }
    if (this.failures.size >= MAX_TRACKED_ADDRESSES) {
      for (const [a, f] of this.failures) if (now - f.since >= WINDOW_MS) this.failures.delete(a);
      if (this.failures.size >= MAX_TRACKED_ADDRESSES) return; // a flood from that many addresses: stop tracking new ones
    }
    this.failures.set(address, { since: now, count: 1, logged: false });
  }

  authorizePublish(clientId: string, topic: string, username?: string): boolean {
    return this.acl ? this.acl.canPublish({ clientId, username }, topic) : true;
  }

  authorizeSubscribe(clientId: string, filter: string, username?: string): boolean {
    return this.acl ? this.acl.canSubscribe({ clientId, username }, filter) : true;
  }

  /** Each message sent: a deny rule inside a granted filter, or rules reloaded since the SUBSCRIBE, apply to it. */
  authorizeRead(clientId: string, topic: string, username?: string): boolean {
    return this.acl ? this.acl.canRead({ clientId, username }, topic) : true;
  }
}

/** `1.2.3.4:5678` → `1.2.3.4`; `[::1]:5678` or `::1:5678` → the part before the last colon. */
function hostOf(remoteAddress: string): string {
  const colon = remoteAddress.lastIndexOf(':');
  return colon > 0 ? remoteAddress.slice(0, colon) : remoteAddress;
}
