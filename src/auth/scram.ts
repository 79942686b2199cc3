// SCRAM (RFC 5802) with SHA-256 and SHA-512 (RFC 7677): the server's side, for MQTT 5 enhanced
// authentication. Hand-written on node:crypto: the server's part is a few HMACs and hashes over
// stored keys, and no well-kept server-side SCRAM library exists for Node.js (the maintained
// implementations, such as node-postgres's, are clients).
//
// Every function here is pure: credentials, nonces and the exchange's state come in as arguments
// and go out as values, so the RFC's test vectors reproduce exactly. No channel binding
// (SCRAM-*-PLUS is not offered) and no authorization identity (`a=`).
import { createHash, createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { MqttError } from '../protocol/errors';
import { ReasonCode } from '../protocol/reason-codes';

export const SCRAM_MECHANISMS = {
  'SCRAM-SHA-256': { hash: 'sha256', keyLength: 32 },
  'SCRAM-SHA-512': { hash: 'sha512', keyLength: 64 },
} as const;

export type ScramMechanism = keyof typeof SCRAM_MECHANISMS;

export function isScramMechanism(method: string): method is ScramMechanism {
  return Object.prototype.hasOwnProperty.call(SCRAM_MECHANISMS, method);
}

/**
 * PBKDF2 iterations `iot-bridge passwd --scram` uses. The client pays them on every connection
 * (node-postgres refuses more than 100 000 by default); RFC 7677 asks for at least 4096.
 */
export const SCRAM_DEFAULT_ITERATIONS = 10_000;

/** What the server keeps for one user and mechanism: enough to check a proof, not to make one. */
export interface ScramCredentials {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

/**
 * SASLprep (RFC 4013), the steps that change bytes: non-ASCII spaces to a space, the characters
 * "commonly mapped to nothing" dropped, NFKC. The prohibited-character and bidi checks are left
 * out, as node-postgres and PostgreSQL do, so the same passwords work with their clients.
 */
export function saslPrep(password: string): string {
  return password
    .replace(/[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g, ' ')
    .replace(/[\u00AD\u034F\u1806\u180B\u180C\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/g, '')
    .normalize('NFKC');
}

const hmac = (mechanism: ScramMechanism, key: Buffer, text: string): Buffer => createHmac(SCRAM_MECHANISMS[mechanism].hash, key).update(text).digest();
const digest = (mechanism: ScramMechanism, data: Buffer): Buffer => createHash(SCRAM_MECHANISMS[mechanism].hash).update(data).digest();

/** StoredKey and ServerKey from SaltedPassword (RFC 5802 §3). */
export function keysFromSaltedPassword(mechanism: ScramMechanism, saltedPassword: Buffer): { storedKey: Buffer; serverKey: Buffer } {
  return {
    storedKey: digest(mechanism, hmac(mechanism, saltedPassword, 'Client Key')),
    serverKey: hmac(mechanism, saltedPassword, 'Server Key'),
  };
}

/** The credentials for a password (synchronous PBKDF2: for `iot-bridge passwd` and tests, not the event loop of a broker). */
export function scramCredentials(mechanism: ScramMechanism, password: string, salt: Buffer, iterations: number): ScramCredentials {
  const { hash, keyLength } = SCRAM_MECHANISMS[mechanism];
  const salted = pbkdf2Sync(saslPrep(password), salt, iterations, keyLength, hash);
  return { iterations, salt, ...keysFromSaltedPassword(mechanism, salted) };
}

/**
 * Stand-in credentials for a user without SCRAM keys, the same for the same name every time: the
 * exchange runs to its end and fails there (RFC 5802 §5.1), so neither the answer nor the salt
 * tells whether a user exists. `secret` is the server's, random per process.
 */
export function decoyCredentials(mechanism: ScramMechanism, user: string, secret: Buffer): ScramCredentials {
  const derive = (label: string): Buffer => createHmac('sha256', secret).update(`${mechanism}\0${label}\0${user}`).digest();
  const keyLength = SCRAM_MECHANISMS[mechanism].keyLength;
  return {
    iterations: SCRAM_DEFAULT_ITERATIONS,
    salt: derive('salt').subarray(0, 16),
    storedKey: Buffer.concat([derive('stored'), derive('stored2')]).subarray(0, keyLength),
    serverKey: Buffer.concat([derive('server'), derive('server2')]).subarray(0, keyLength),
  };
}

/** A malformed or unsupported SCRAM message: not an MQTT protocol error, so 0x87 Not authorized with the reason. */
const malformed = (what: string): MqttError => new MqttError(ReasonCode.NotAuthorized, `SCRAM: ${what}`);

/** The client-first-message (RFC 5802 §7), parsed. */
export interface ScramClientFirst {
  /** "n,," or "y,,": the client-final-message must echo it (base64) in `c=`. */
  gs2Header: string;
  /** `n=`, unescaped. Empty or "*" means "the MQTT User Name" (node-postgres sends "*"). */
  user: string;
  nonce: string;
  /** The message without its GS2 header, as it enters the AuthMessage. */
  bare: string;
}

/** printable = %x21-2B / %x2D-7E (no comma). */
const NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;

export function parseClientFirst(message: string): ScramClientFirst {
  const first = message.indexOf(',');
  const second = first < 0 ? -1 : message.indexOf(',', first + 1);
  if (second < 0) throw malformed('client-first-message has no GS2 header');
  const flag = message.slice(0, first);
  if (flag.startsWith('p=')) throw malformed('channel binding is not supported (SCRAM-*-PLUS is not offered)');
  if (flag !== 'n' && flag !== 'y') throw malformed('bad channel binding flag');
  if (second !== first + 1) throw malformed('an authorization identity (a=) is not supported');
  const bare = message.slice(second + 1);
  const attributes = bare.split(',');
  if (attributes[0]?.startsWith('m=')) throw malformed('mandatory extensions (m=) are not supported');
  const [user, nonce] = attributes;
  if (!user?.startsWith('n=') || !nonce?.startsWith('r=')) throw malformed('client-first-message needs n= and r=');
  const name = user.slice(2);
  // saslname: "," and "=" travel as "=2C" and "=3D"; any other "=" is an error (RFC 5802 §5.1).
  if (/=(?!2C|3D)/.test(name)) throw malformed('bad escape in the user name');
  if (!NONCE.test(nonce.slice(2))) throw malformed('bad client nonce');
  return { gs2Header: message.slice(0, second + 1), user: name.replace(/=2C/g, ',').replace(/=3D/g, '='), nonce: nonce.slice(2), bare };
}

/** Where an exchange stands after the server-first-message. */
export interface ScramServerState {
  mechanism: ScramMechanism;
  /** The user being authenticated (already resolved when `n=` was empty or "*"). */
  user: string;
  credentials: ScramCredentials;
  /** False for decoy credentials: the proof is then refused whatever it is. */
  known: boolean;
  /** Client nonce followed by the server's. */
  nonce: string;
  clientFirstBare: string;
  serverFirst: string;
  gs2Header: string;
}

/** The server-first-message for a client-first-message, and the state the final step needs. */
export function scramServerFirst(input: {
  mechanism: ScramMechanism;
  clientFirst: ScramClientFirst;
  user: string;
  credentials: ScramCredentials;
  known: boolean;
  /** Printable, without commas; base64 of 18 random bytes in the broker. */
  serverNonce: string;
}): { state: ScramServerState; message: string } {
  const { mechanism, clientFirst, user, credentials, known, serverNonce } = input;
  const nonce = clientFirst.nonce + serverNonce;
  const serverFirst = `r=${nonce},s=${credentials.salt.toString('base64')},i=${credentials.iterations}`;
  return {
    state: { mechanism, user, credentials, known, nonce, clientFirstBare: clientFirst.bare, serverFirst, gs2Header: clientFirst.gs2Header },
    message: serverFirst,
  };
}

/**
 * Checks the client-final-message's proof. Returns the server-final-message (`v=`, which lets the
 * client check the server in turn); throws MqttError 0x86 for a wrong proof or an unknown user,
 * 0x87 for a malformed message.
 */
export function scramServerFinal(state: ScramServerState, message: string): string {
  const proofAt = message.lastIndexOf(',p=');
  if (proofAt < 0) throw malformed('client-final-message has no proof');
  const withoutProof = message.slice(0, proofAt);
  const [channelBinding, nonce] = withoutProof.split(',');
  if (channelBinding !== `c=${Buffer.from(state.gs2Header).toString('base64')}`) throw malformed('channel binding data does not match the GS2 header');
  if (nonce !== `r=${state.nonce}`) throw malformed('nonce does not match');
  const proofText = message.slice(proofAt + 3);
  const proof = Buffer.from(proofText, 'base64');
  const { mechanism, credentials } = state;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(proofText) || proof.length !== SCRAM_MECHANISMS[mechanism].keyLength) throw malformed('bad proof encoding');
  const authMessage = `${state.clientFirstBare},${state.serverFirst},${withoutProof}`;
  const clientSignature = hmac(mechanism, credentials.storedKey, authMessage);
  const clientKey = Buffer.alloc(proof.length);
  for (let i = 0; i < proof.length; i++) clientKey[i] = proof[i] ^ clientSignature[i];
  const matches = timingSafeEqual(digest(mechanism, clientKey), credentials.storedKey);
  if (!matches || !state.known) throw new MqttError(ReasonCode.BadUserNameOrPassword, 'SCRAM: the proof did not verify');
  return `v=${hmac(mechanism, credentials.serverKey, authMessage).toString('base64')}`;
}
