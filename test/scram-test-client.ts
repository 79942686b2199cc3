// OUR OWN client-side SCRAM derivations (RFC 5802), for what no real client covers: SCRAM-SHA-512
// (node-postgres, the real client the other tests use, speaks only SCRAM-SHA-256) and fixed nonces.
// It is checked against RFC 7677's SCRAM-SHA-256 vector (test/unit/scram.test.ts); for SHA-512
// only the hash differs. Not an independent implementation: the broker's side is tested against
// it, so a shared misreading of the RFC would not show here, only in the SHA-256 tests with pg.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

export type TestMechanism = 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

const HASH = { 'SCRAM-SHA-256': { name: 'sha256', length: 32 }, 'SCRAM-SHA-512': { name: 'sha512', length: 64 } } as const;

export class TestScramClient {
  readonly clientFirst: string;
  private serverSignature = '';

  constructor(
    private readonly mechanism: TestMechanism,
    private readonly user: string,
    private readonly nonce = randomBytes(18).toString('base64'),
  ) {
    this.clientFirst = `n,,n=${user},r=${this.nonce}`;
  }

  /** The client-final-message for the server-first-message (and remembers the expected server signature). */
  clientFinal(serverFirst: string, password: string): string {
    const attrs = new Map(serverFirst.split(',').map((a) => [a[0], a.slice(2)] as const));
    const nonce = attrs.get('r') ?? '';
    if (!nonce.startsWith(this.nonce) || nonce === this.nonce) throw new Error('server nonce does not extend ours');
    const { name, length } = HASH[this.mechanism];
    const salted = pbkdf2Sync(password, Buffer.from(attrs.get('s') ?? '', 'base64'), Number(attrs.get('i')), length, name);
    const clientKey = createHmac(name, salted).update('Client Key').digest();
    const storedKey = createHash(name).update(clientKey).digest();
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `n=${this.user},r=${this.nonce},${serverFirst},${withoutProof}`;
    const signature = createHmac(name, storedKey).update(authMessage).digest();
    const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]));
    const serverKey = createHmac(name, salted).update('Server Key').digest();
    this.serverSignature = createHmac(name, serverKey).update(authMessage).digest('base64');
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Whether the server-final-message proves the server holds the user's ServerKey. */
  serverVerified(serverFinal: string): boolean {
    return this.serverSignature !== '' && serverFinal === `v=${this.serverSignature}`;
  }
}
