// The broker's authentication and authorization from files: a password file (password-file.ts),
// JWT keys (jwt.ts) and an ACL file (acl.ts), all re-read on `reload()` (the CLI calls it on
// SIGHUP). A file that does not parse at start stops the broker; at a reload the previous rules
// and keys stay and the error is logged, so a typo never opens the broker.
//
// With both a password file and JWT keys, a password that looks like a JWT (three base64url
// parts) is checked as a token, any other against the password file.
import fs from 'node:fs';
import type { AuthDecision, AuthRequest, BrokerHooks, Logger } from '../broker/options';
import { ReasonCode } from '../protocol/reason-codes';
import { Acl } from './acl';
import { type JwtOptions, JwtVerifier, jwtConfigured, looksLikeJwt } from './jwt';
import { PasswordFile } from './password-file';

export interface FileAuthOptions extends JwtOptions {
  /** Path of the password file; '' for none. */
  passwordFile: string;
  /** Path of the ACL file; '' for none (everything allowed). */
  aclFile: string;
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
    const acl = o.aclFile ? Acl.parse(fs.readFileSync(o.aclFile, 'utf8'), o.aclFile) : undefined;
    const jwt = jwtConfigured(o) ? JwtVerifier.load(o) : undefined;
    this.passwords = passwords;
    this.acl = acl;
    this.jwt = jwt;
  }

  private get anonymousAllowed(): boolean {
    return this.options.allowAnonymous === 'auto' ? this.passwords === undefined && this.jwt === undefined : this.options.allowAnonymous === 'true';
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
    const seen = this.failures.get(address);
    const limit = this.options.authFailuresPerMinute;
    if (limit > 0 && seen && now - seen.since < WINDOW_MS && seen.count >= limit) {
      // Guessing: refused without running the KDF, so a flood costs neither CPU nor the thread pool.
      this.refused.throttled++;
      if (!seen.logged) {
        seen.logged = true;
        this.log.warn({ remoteAddress: address, failures: seen.count, limitPerMinute: limit }, 'too many failed logins from this address: refusing its CONNECTs for the rest of the minute');
      }
      return ReasonCode.ConnectionRateExceeded;
    }
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
