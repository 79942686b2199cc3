// Password files: one `user:hash` per line. Written by `iot-bridge passwd` with scrypt; Mosquitto's
// files (`mosquitto_passwd`, `$6$` SHA-512 and `$7$` PBKDF2-SHA-512) are read as they are, so
// devices keep their passwords when they move over. Hand-written on node:crypto: the formats are
// a few lines each and no maintained library reads Mosquitto's.
import { createHash, pbkdf2, randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto';

/** scrypt cost: N=2^15, r=8, p=1 (about 50 ms and 32 MiB per check on a current core). */
const SCRYPT = { N: 1 << 15, r: 8, p: 1, keyLength: 64, saltLength: 16 };

export class PasswordFileError extends Error {
  readonly reason = 'invalid-password-file';
}

type Hash =
  | { kind: 'scrypt'; N: number; r: number; p: number; salt: Buffer; hash: Buffer }
  | { kind: 'mosquitto-sha512'; salt: Buffer; hash: Buffer }
  | { kind: 'mosquitto-pbkdf2'; iterations: number; salt: Buffer; hash: Buffer };

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
  return `unknown hash format ${JSON.stringify(`$${parts[1] ?? ''}$`)} (iot-bridge writes $scrypt$; Mosquitto files use $6$ or $7$)`;
}

/** Off the event loop (libuv's thread pool) for the slow KDFs: a check must not stall every connection. */
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
    }
  });
}

/** The users of one password file. */
export class PasswordFile {
  private constructor(private readonly users: Map<string, Hash>) {}

  /** Parses a whole file; an invalid line is an error naming its line number (never its content). */
  static parse(text: string, name = 'password file'): PasswordFile {
    const users = new Map<string, Hash>();
    const lines = text.split(/\r?\n/);
    lines.forEach((line, i) => {
      if (line.trim() === '' || line.startsWith('#')) return;
      const colon = line.indexOf(':');
      if (colon <= 0) throw new PasswordFileError(`${name}, line ${i + 1}: expected user:hash`);
      const hash = parseHash(line.slice(colon + 1).trim());
      if (typeof hash === 'string') throw new PasswordFileError(`${name}, line ${i + 1}: ${hash}`);
      users.set(line.slice(0, colon), hash);
    });
    return new PasswordFile(users);
  }

  get size(): number {
    return this.users.size;
  }

  has(user: string): boolean {
    return this.users.has(user);
  }

  /** Constant time in the hash comparison; an unknown user costs a derivation too, so timing does not tell users apart. */
  async verify(user: string, password: Buffer): Promise<boolean> {
    const h = this.users.get(user);
    const derived = await derive(h ?? DUMMY, password);
    return h !== undefined && derived.length === h.hash.length && timingSafeEqual(derived, h.hash);
  }
}

const DUMMY: Hash = { kind: 'mosquitto-pbkdf2', iterations: 101, salt: Buffer.alloc(12), hash: Buffer.alloc(64) };

/** The file's text with `user` set to `password` (added or replaced), or removed when `password` is null. */
export function updatePasswordFile(text: string, user: string, password: string | null): string {
  if (user === '' || user.includes(':') || /[\r\n]/.test(user)) throw new PasswordFileError('a user name may not be empty or contain ":" or a line break');
  const lines = text.split(/\r?\n/).filter((l) => l !== '');
  const kept = lines.filter((l) => l.slice(0, l.indexOf(':')) !== user || l.startsWith('#'));
  if (password === null && kept.length === lines.length) throw new PasswordFileError(`no user ${JSON.stringify(user)} in the file`);
  if (password !== null) kept.push(`${user}:${hashPassword(password)}`);
  return kept.length > 0 ? `${kept.join('\n')}\n` : '';
}
