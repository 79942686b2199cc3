// Password files: `user:hash` lines. Written by `iot-bridge passwd` with scrypt, or with SCRAM keys
// (`--scram`); Mosquitto's files (`mosquitto_passwd`, `$6$` SHA-512 and `$7$` PBKDF2-SHA-512) are
// read as they are, so devices keep their passwords when they move over. Hand-written on
// node:crypto: the formats are a few lines each and no maintained library reads Mosquitto's.
//
// A user has at most one line of each kind: one password hash ($scrypt$, $6$ or $7$), one
// $scram-sha-256$ and one $scram-sha-512$ (a later line of the same kind replaces an earlier one).
// SCRAM needs its own lines (stored keys, not a hash); a plain password is checked against the
// password hash, or, for a user with only SCRAM lines, against the SCRAM-SHA-256 (else -512) keys.
import { createHash, pbkdf2, randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';
import { SCRAM_DEFAULT_ITERATIONS, SCRAM_MECHANISMS, type ScramCredentials, type ScramMechanism, keysFromSaltedPassword, saslPrep, scramCredentials } from './scram';

/** scrypt cost: N=2^15, r=8, p=1 (about 50 ms and 32 MiB per check on a current core). */
const SCRYPT = { N: 1 << 15, r: 8, p: 1, keyLength: 64, saltLength: 16 };

export class PasswordFileError extends Error {
  readonly reason = 'invalid-password-file';
}

type PasswordHash =
  | { kind: 'scrypt'; N: number; r: number; p: number; salt: Buffer; hash: Buffer }
  | { kind: 'mosquitto-sha512'; salt: Buffer; hash: Buffer }
  | { kind: 'mosquitto-pbkdf2'; iterations: number; salt: Buffer; hash: Buffer };

type Hash = PasswordHash | { kind: 'scram'; mechanism: ScramMechanism; credentials: ScramCredentials };

/** A user's lines: a password hash, SCRAM keys per mechanism, or both. */
interface UserEntry {
  password?: PasswordHash;
  scram: Partial<Record<ScramMechanism, ScramCredentials>>;
}

/** The line prefix of each SCRAM mechanism: `$scram-sha-256$`. */
const SCRAM_PREFIX: Record<ScramMechanism, string> = { 'SCRAM-SHA-256': 'scram-sha-256', 'SCRAM-SHA-512': 'scram-sha-512' };

/**
 * `$scram-sha-256$iterations$salt$StoredKey$ServerKey` (base64), what `iot-bridge passwd --scram`
 * writes, one line per mechanism.
 */
export function scramLine(mechanism: ScramMechanism, password: string, iterations = SCRAM_DEFAULT_ITERATIONS, salt = randomBytes(16)): string {
  const c = scramCredentials(mechanism, password, salt, iterations);
  return `$${SCRAM_PREFIX[mechanism]}$${iterations}$${salt.toString('base64')}$${c.storedKey.toString('base64')}$${c.serverKey.toString('base64')}`;
}

/** `$scrypt$N$r$p$salt$hash` (base64), the format `iot-bridge passwd` writes. */
export function hashPassword(password: string): string {
  const salt = randomBytes(SCRYPT.saltLength);
  const hash = scryptSync(password, salt, SCRYPT.keyLength, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: 128 * SCRYPT.N * SCRYPT.r * 2 });
  return `$scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

function parseHash(text: string): Hash | string {
  const parts = text.split('$');
  // parts[0] is the empty text before the leading '$'.
  if (parts[0] !== '') return 'the hash does not start with $';
  const b64 = (s: string | undefined): Buffer | undefined => (s !== undefined && /^[A-Za-z0-9+/]+={0,2}$/.test(s) ? Buffer.from(s, 'base64') : undefined);
  if (parts[1] === 'scrypt' && parts.length === 7) {
    const [N, r, p] = [Number(parts[2]), Number(parts[3]), Number(parts[4])];
    const salt = b64(parts[5]);
    const hash = b64(parts[6]);
    if (!Number.isInteger(N) || N < 2 || (N & (N - 1)) !== 0 || N > 1 << 20 || !(r >= 1 && r <= 32) || !(p >= 1 && p <= 16)) return 'scrypt parameters out of range';
    if (!salt || !hash || hash.length < 16) return 'bad scrypt salt or hash';
    return { kind: 'scrypt', N, r, p, salt, hash };
  }
  if (parts[1] === '6' && parts.length === 4) {
    const salt = b64(parts[2]);
    const hash = b64(parts[3]);
    if (!salt || !hash || hash.length !== 64) return 'bad $6$ salt or hash';
    return { kind: 'mosquitto-sha512', salt, hash };
  }
  if (parts[1] === '7' && parts.length === 5) {
    const iterations = Number(parts[2]);
    const salt = b64(parts[3]);
    const hash = b64(parts[4]);
    if (!Number.isInteger(iterations) || iterations < 1 || iterations > 10_000_000) return 'bad $7$ iteration count';
    if (!salt || !hash || hash.length !== 64) return 'bad $7$ salt or hash';
    return { kind: 'mosquitto-pbkdf2', iterations, salt, hash };
  }
  const mechanism = (Object.keys(SCRAM_PREFIX) as ScramMechanism[]).find((m) => SCRAM_PREFIX[m] === parts[1]);
  if (mechanism && parts.length === 6) {
    const iterations = Number(parts[2]);
    const [salt, storedKey, serverKey] = [b64(parts[3]), b64(parts[4]), b64(parts[5])];
    const keyLength = SCRAM_MECHANISMS[mechanism].keyLength;
    if (!Number.isInteger(iterations) || iterations < 4096 || iterations > 10_000_000) return `bad $${parts[1]}$ iteration count (4096 to 10000000)`;
    if (!salt || salt.length < 8 || storedKey?.length !== keyLength || serverKey?.length !== keyLength) return `bad $${parts[1]}$ salt or keys`;
    return { kind: 'scram', mechanism, credentials: { iterations, salt, storedKey, serverKey } };
  }
  return `unknown hash format ${JSON.stringify(`$${parts[1] ?? ''}$`)} (iot-bridge writes $scrypt$ and $scram-sha-256$/$scram-sha-512$; Mosquitto files use $6$ or $7$)`;
}

/** Off the event loop (libuv's thread pool) for the slow KDFs: a check must not stall every connection. Resolves to what `expected(h)` must equal. */
function derive(h: Hash, password: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, key: Buffer): void => (err ? reject(err) : resolve(key));
    switch (h.kind) {
      case 'scrypt':
        scrypt(password, h.salt, h.hash.length, { N: h.N, r: h.r, p: h.p, maxmem: 256 * h.N * h.r }, done);
        return;
      case 'mosquitto-sha512':
        resolve(createHash('sha512').update(password).update(h.salt).digest());
        return;
      case 'mosquitto-pbkdf2':
        pbkdf2(password, h.salt, h.iterations, h.hash.length, 'sha512', done);
        return;
      case 'scram': {
        const { hash, keyLength } = SCRAM_MECHANISMS[h.mechanism];
        pbkdf2(saslPrep(password.toString('utf8')), h.credentials.salt, h.credentials.iterations, keyLength, hash, (err, salted) =>
          done(err, err ? salted : keysFromSaltedPassword(h.mechanism, salted).storedKey),
        );
        return;
      }
    }
  });
}

function expected(h: Hash): Buffer {
  return h.kind === 'scram' ? h.credentials.storedKey : h.hash;
}

/** The users of one password file. */
export class PasswordFile {
  private constructor(private readonly users: Map<string, UserEntry>) {}

  /** Parses a whole file; an invalid line is an error naming its line number (never its content). */
  static parse(text: string, name = 'password file'): PasswordFile {
    const users = new Map<string, UserEntry>();
    const lines = text.split(/\r?\n/);
    lines.forEach((line, i) => {
      if (line.trim() === '' || line.startsWith('#')) return;
      const colon = line.indexOf(':');
      if (colon <= 0) throw new PasswordFileError(`${name}, line ${i + 1}: expected user:hash`);
      const hash = parseHash(line.slice(colon + 1).trim());
      if (typeof hash === 'string') throw new PasswordFileError(`${name}, line ${i + 1}: ${hash}`);
      const user = line.slice(0, colon);
      const entry = users.get(user) ?? { scram: {} };
      if (hash.kind === 'scram') entry.scram[hash.mechanism] = hash.credentials;
      else entry.password = hash;
      users.set(user, entry);
    });
    return new PasswordFile(users);
  }

  get size(): number {
    return this.users.size;
  }

  has(user: string): boolean {
    return this.users.has(user);
  }

  /**
   * Constant time in the hash comparison. An unknown user costs a derivation with the parameters
   * of the file's first user (the same KDF and work factor as a real one in a file written by one
   * tool), so timing does not tell which users exist.
   */
  async verify(user: string, password: Buffer): Promise<boolean> {
    const h = this.passwordHash(user);
    const derived = await derive(h ?? this.decoy(), password);
    return h !== undefined && derived.length === expected(h).length && timingSafeEqual(derived, expected(h));
  }

  /** The user's SCRAM keys for `mechanism`, if its lines have them. */
  scramCredentials(user: string, mechanism: ScramMechanism): ScramCredentials | undefined {
    return this.users.get(user)?.scram[mechanism];
  }

  /** A stand-in costing what the file's first user costs: that user's own hash (the result is discarded: no password matches an unknown user). */
  private decoy(): Hash {
    const first = this.users.keys().next();
    return (first.done ? undefined : this.passwordHash(first.value)) ?? DUMMY;
  }

  /** What a plain password is checked against: the password hash, else the SCRAM-SHA-256 keys, else the -512 ones. */
  private passwordHash(user: string): Hash | undefined {
    const entry = this.users.get(user);
    if (!entry) return undefined;
    if (entry.password) return entry.password;
    const mechanism = (['SCRAM-SHA-256', 'SCRAM-SHA-512'] as const).find((m) => entry.scram[m] !== undefined);
    return mechanism && { kind: 'scram', mechanism, credentials: entry.scram[mechanism]! };
  }
}

/** For a file without users: the cheapest hash Mosquitto writes. */
const DUMMY: Hash = { kind: 'mosquitto-pbkdf2', iterations: 101, salt: Buffer.alloc(12), hash: Buffer.alloc(64) };

/**
 * The file's text with `user` set to `password`, or removed when `password` is null. Every line of
 * the user goes, so no key of an old password survives; then one scrypt line, or with `scram` one
 * line per SCRAM mechanism (a plain password then checks against those).
 */
export function updatePasswordFile(text: string, user: string, password: string | null, options: { scram?: boolean } = {}): string {
  if (user === '' || user.includes(':') || /[\r\n]/.test(user)) throw new PasswordFileError('a user name may not be empty or contain ":" or a line break');
  const lines = text.split(/\r?\n/).filter((l) => l !== '');
  const kept = lines.filter((l) => l.slice(0, l.indexOf(':')) !== user || l.startsWith('#'));
  if (password === null && kept.length === lines.length) throw new PasswordFileError(`no user ${JSON.stringify(user)} in the file`);
  if (password !== null && options.scram) for (const m of Object.keys(SCRAM_MECHANISMS) as ScramMechanism[]) kept.push(`${user}:${scramLine(m, password)}`);
  else if (password !== null) kept.push(`${user}:${hashPassword(password)}`);
  return kept.length > 0 ? `${kept.join('\n')}\n` : '';
}
