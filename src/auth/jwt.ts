// JWT as the MQTT password, verified with `jose`: a shared HS256 secret, a PEM public key (RS256
// or ES256) or a JSON Web Key Set (RS256 or ES256, the token's `kid` picks the key). A valid token
// names its user in a claim (`sub` by default) and may limit the topics its client uses with a
// claim such as `{"acl": {"pub": ["a/#"], "sub": ["b/+"]}}`.
//
// Keys are read synchronously, so a reload either replaces all of them or none; a token is never
// logged, only the reason it was refused.
import { createPublicKey, createSecretKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import type * as Jose from 'jose';
import type { JSONWebKeySet, JWTPayload, JWTVerifyOptions } from 'jose';
import type { TopicLimits } from '../broker/options';
import { topicFilterError, topicMatches } from '../protocol/topics';
import { filterCovers, unsharedFilter } from './acl';

/** JWT as the MQTT password (docs/security.md): one key source among the first four, '' for none. */
export interface JwtOptions {
  jwtSecret: string;
  jwtSecretFile: string;
  jwtPublicKeyFile: string;
  jwtJwksFile: string;
  jwtUsernameClaim: string;
  jwtAclClaim: string;
  /** '': not checked. */
  jwtIssuer: string;
  /** '': not checked. */
  jwtAudience: string;
  jwtClockToleranceSeconds: number;
}

export class JwtKeyError extends Error {
  readonly reason = 'invalid-jwt-key';
}

/** A shorter HS256 secret can be brute-forced from one token (RFC 7518 §3.2: at least the hash size). */
const MIN_SECRET_BYTES = 32;
/** Longer passwords are refused unread: tokens are a few hundred bytes, and CONNECT may carry a megabyte. */
const MAX_TOKEN_BYTES = 16 * 1024;
const PUBLIC_KEY_ALGORITHMS = ['RS256', 'ES256'];

/** Three base64url parts separated by dots: what a signed JWT (JWS compact form) looks like. */
export function looksLikeJwt(password: Buffer): boolean {
  return password.length <= MAX_TOKEN_BYTES && /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(password.toString('latin1'));
}

export function jwtConfigured(o: JwtOptions): boolean {
  return o.jwtSecret !== '' || o.jwtSecretFile !== '' || o.jwtPublicKeyFile !== '' || o.jwtJwksFile !== '';
}

export type TokenCheck = { ok: true; username: string; limits?: TopicLimits } | { ok: false; reason: string };

type Keys = { key: KeyObject; algorithms: string[] } | { keySet: ReturnType<typeof Jose.createLocalJWKSet>; algorithms: string[] };

let joseModule: typeof Jose | undefined;

/** jose adds about 2 MiB and 20 ms to the broker's start: only a broker with a JWT key loads it. */
function jose(): typeof Jose {
  return (joseModule ??= require('jose') as typeof Jose);
}

export class JwtVerifier {
  private constructor(
    private readonly keys: Keys,
    private readonly options: JwtOptions,
  ) {}

  /** Reads the configured key source; throws JwtKeyError naming the file and what is wrong with it (never its content). */
  static load(options: JwtOptions): JwtVerifier {
    return new JwtVerifier(loadKeys(options), options);
  }

  async check(token: Buffer, connectUsername: string | undefined): Promise<TokenCheck> {
    if (!looksLikeJwt(token)) return { ok: false, reason: 'not a JWT (three base64url parts, at most 16 KiB)' };
    const o = this.options;
    const verifyOptions: JWTVerifyOptions = {
      algorithms: this.keys.algorithms,
      clockTolerance: o.jwtClockToleranceSeconds,
      requiredClaims: ['exp'],
      issuer: o.jwtIssuer || undefined,
      audience: o.jwtAudience || undefined,
    };
    let payload: JWTPayload;
    try {
      const text = token.toString('latin1');
      payload = ('key' in this.keys ? await jose().jwtVerify(text, this.keys.key, verifyOptions) : await jose().jwtVerify(text, this.keys.keySet, verifyOptions)).payload;
    } catch (e) {
      // jose's messages name the failed check, never the token's content.
      return { ok: false, reason: e instanceof jose().errors.JOSEError ? `${e.code}: ${e.message}` : 'token could not be verified' };
    }
    const username = payload[o.jwtUsernameClaim];
    if (typeof username !== 'string' || username === '') return { ok: false, reason: `no "${o.jwtUsernameClaim}" claim naming the user` };
    if (connectUsername !== undefined && connectUsername !== username) return { ok: false, reason: `the CONNECT user name is not the token's "${o.jwtUsernameClaim}"` };
    const topics = payload[o.jwtAclClaim];
    if (topics === undefined) return { ok: true, username };
    const limits = parseTopicsClaim(topics);
    if (typeof limits === 'string') return { ok: false, reason: `"${o.jwtAclClaim}" claim: ${limits}` };
    return { ok: true, username, limits };
  }
}

/** The topics a token allows: publish to a topic one `pub` filter matches, subscribe to a filter one `sub` filter covers. */
class TokenTopics implements TopicLimits {
  constructor(
    private readonly publish: readonly string[],
    private readonly subscribe: readonly string[],
  ) {}

  canPublish(topic: string): boolean {
    return this.publish.some((filter) => topicMatches(filter, topic));
  }

  canSubscribe(filter: string): boolean {
    const plain = unsharedFilter(filter);
    return this.subscribe.some((granted) => filterCovers(granted, plain));
  }
}

/** `{"pub": [...], "sub": [...]}`; a missing list allows nothing, an unknown key is an error (a typo must not pass). */
function parseTopicsClaim(claim: unknown): TokenTopics | string {
  if (typeof claim !== 'object' || claim === null || Array.isArray(claim)) return 'not an object with "pub" and "sub" lists';
  const lists: Record<string, string[]> = { pub: [], sub: [] };
  for (const [key, value] of Object.entries(claim)) {
    if (!(key in lists)) return `unknown key ${JSON.stringify(key)} (expected "pub" and "sub")`;
    if (!Array.isArray(value) || !value.every((f): f is string => typeof f === 'string')) return `"${key}" is not a list of topic filters`;
    for (const filter of value) {
      const error = topicFilterError(filter);
      if (error) return `"${key}" holds an invalid topic filter (${error})`;
    }
    lists[key] = value;
  }
  return new TokenTopics(lists.pub!, lists.sub!);
}

function loadKeys(o: JwtOptions): Keys {
  if (o.jwtSecret !== '') return secretKey(Buffer.from(o.jwtSecret, 'utf8'), 'jwtSecret');
  if (o.jwtSecretFile !== '') return secretKey(Buffer.from(readKeyFile(o.jwtSecretFile).replace(/\r?\n$/, ''), 'utf8'), o.jwtSecretFile);
  if (o.jwtPublicKeyFile !== '') return publicKey(readKeyFile(o.jwtPublicKeyFile), o.jwtPublicKeyFile);
  if (o.jwtJwksFile !== '') return keySet(readKeyFile(o.jwtJwksFile), o.jwtJwksFile);
  throw new JwtKeyError('no JWT key configured');
}

function readKeyFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new JwtKeyError(`${file}: ${(e as Error).message}`);
  }
}

function secretKey(secret: Buffer, where: string): Keys {
  if (secret.length < MIN_SECRET_BYTES) throw new JwtKeyError(`${where}: an HS256 secret needs at least ${MIN_SECRET_BYTES} bytes, got ${secret.length}`);
  return { key: createSecretKey(secret), algorithms: ['HS256'] };
}

function publicKey(pem: string, file: string): Keys {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new JwtKeyError(`${file}: not a PEM public key or certificate`);
  }
  return { key, algorithms: [algorithmOf(key, file)] };
}

/** RS256 for an RSA key of 2048 bits or more, ES256 for a P-256 key: the algorithm follows from the key, never from the token. */
function algorithmOf(key: KeyObject, where: string): string {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa' && (details?.modulusLength ?? 0) >= 2048) return 'RS256';
  if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1') return 'ES256';
  throw new JwtKeyError(`${where}: needs an RSA key of at least 2048 bits (RS256) or a P-256 key (ES256), got ${key.asymmetricKeyType ?? 'another key type'}`);
}

function keySet(text: string, file: string): Keys {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new JwtKeyError(`${file}: not JSON (${(e as Error).message})`);
  }
  const keys = typeof parsed === 'object' && parsed !== null && 'keys' in parsed ? parsed.keys : undefined;
  if (!Array.isArray(keys) || keys.length === 0) throw new JwtKeyError(`${file}: expected a JSON Web Key Set, {"keys": [...]} with at least one key`);
  keys.forEach((jwk: unknown, i) => {
    const where = `${file}, key ${i + 1}`;
    if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw new JwtKeyError(`${where}: not a JSON object`);
    // A private key in a file every broker reads would be a key to sign tokens with.
    if ('d' in jwk) throw new JwtKeyError(`${where}: holds a private key; give the public key only`);
    try {
      algorithmOf(createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }), where);
    } catch (e) {
      throw e instanceof JwtKeyError ? e : new JwtKeyError(`${where}: not a public JWK (${(e as Error).message})`);
    }
  });
  return { keySet: jose().createLocalJWKSet(parsed as JSONWebKeySet), algorithms: PUBLIC_KEY_ALGORITHMS };
}
