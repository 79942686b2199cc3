// SCRAM's server side as pure functions: RFC 7677's SCRAM-SHA-256 test vector reproduced byte for
// byte (nonces injected), SCRAM-SHA-512 against our own client derivations (test/scram-test-client.ts,
// labelled there), the refusals, and the password file's SCRAM lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PasswordFile, scramLine, updatePasswordFile } from '../../src/auth/password-file';
import {
  type ScramMechanism,
  decoyCredentials,
  parseClientFirst,
  scramCredentials,
  scramServerFinal,
  scramServerFirst,
} from '../../src/auth/scram';
import { MqttError } from '../../src/protocol/errors';
import { TestScramClient } from '../scram-test-client';

// RFC 7677 §3: user "user", password "pencil".
const RFC7677 = {
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  salt: 'W22ZaJ0SNY7soEsUEjb6gQ==',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

function rfcExchange(password: string) {
  const credentials = scramCredentials('SCRAM-SHA-256', password, Buffer.from(RFC7677.salt, 'base64'), 4096);
  const clientFirst = parseClientFirst(RFC7677.clientFirst);
  return scramServerFirst({ mechanism: 'SCRAM-SHA-256', clientFirst, user: clientFirst.user, credentials, known: true, serverNonce: RFC7677.serverNonce });
}

const refusedWith = (code: number) => (e: unknown) => e instanceof MqttError && e.reasonCode === code;

test('SCRAM-SHA-256: the server reproduces RFC 7677 §3 (user "user", password "pencil") exactly', () => {
  const { state, message } = rfcExchange('pencil');
  assert.equal(state.user, 'user');
  assert.equal(message, RFC7677.serverFirst);
  assert.equal(scramServerFinal(state, RFC7677.clientFinal), RFC7677.serverFinal);
});

test('SCRAM-SHA-256: the RFC 7677 proof against other keys, a changed proof, nonce or channel binding: refused', () => {
  assert.throws(() => scramServerFinal(rfcExchange('pencil2').state, RFC7677.clientFinal), refusedWith(0x86), 'another password');
  const { state } = rfcExchange('pencil');
  const flipped = RFC7677.clientFinal.replace('p=dHzb', 'p=dHzc');
  assert.throws(() => scramServerFinal(state, flipped), refusedWith(0x86), 'a changed proof');
  assert.throws(() => scramServerFinal(state, RFC7677.clientFinal.replace('$k0', '$k1')), refusedWith(0x87), 'another nonce');
  assert.throws(() => scramServerFinal(state, RFC7677.clientFinal.replace('c=biws', 'c=eSws')), refusedWith(0x87), 'a channel binding other than the GS2 header');
  assert.throws(() => scramServerFinal(state, 'c=biws,r=x'), refusedWith(0x87), 'no proof');
  assert.throws(() => scramServerFinal({ ...state, known: false }, RFC7677.clientFinal), refusedWith(0x86), 'decoy credentials never verify');
});

test('our test client reproduces RFC 7677 §3 on the client side (so its SHA-512 runs below rest on checked derivations)', () => {
  const client = new TestScramClient('SCRAM-SHA-256', 'user', 'rOprNGfwEbeRWgbNEkqO');
  assert.equal(client.clientFirst, RFC7677.clientFirst);
  assert.equal(client.clientFinal(RFC7677.serverFirst, 'pencil'), RFC7677.clientFinal);
  assert.equal(client.serverVerified(RFC7677.serverFinal), true);
});

for (const mechanism of ['SCRAM-SHA-256', 'SCRAM-SHA-512'] as ScramMechanism[]) {
  test(`${mechanism}: a whole exchange with our own client derivations (labelled: not an independent client); a wrong password fails`, () => {
    const credentials = scramCredentials(mechanism, 'secret-512', Buffer.from('0123456789abcdef'), 4096);
    for (const [password, ok] of [['secret-512', true], ['secret-513', false]] as const) {
      const client = new TestScramClient(mechanism, 'dev');
      const { state, message } = scramServerFirst({ mechanism, clientFirst: parseClientFirst(client.clientFirst), user: 'dev', credentials, known: true, serverNonce: 'srv-nonce' });
      const final = client.clientFinal(message, password);
      if (ok) assert.equal(client.serverVerified(scramServerFinal(state, final)), true, 'the server signature did not verify');
      else assert.throws(() => scramServerFinal(state, final), refusedWith(0x86));
    }
  });
}

test('client-first-message: escapes, n=* and refusals (channel binding, a=, m=, bad escapes, bad nonce)', () => {
  assert.deepEqual(parseClientFirst('n,,n=a=2Cb=3Dc,r=abc'), { gs2Header: 'n,,', user: 'a,b=c', nonce: 'abc', bare: 'n=a=2Cb=3Dc,r=abc' });
  assert.equal(parseClientFirst('y,,n=*,r=abc').user, '*', 'node-postgres sends n=*');
  assert.equal(parseClientFirst('n,,n=,r=abc,x=ext').user, '');
  for (const bad of ['p=tls-server-end-point,,n=u,r=abc', 'n,a=admin,n=u,r=abc', 'n,,m=ext,n=u,r=abc', 'n,,n=a=2Db,r=abc', 'n,,n=u,r=', 'n,,r=abc,n=u', 'n', 'x,,n=u,r=abc']) {
    assert.throws(() => parseClientFirst(bad), refusedWith(0x87), bad);
  }
});

test('decoy credentials: the same salt for the same user every time, another for another user', () => {
  const secret = Buffer.alloc(32, 7);
  const a = decoyCredentials('SCRAM-SHA-512', 'ghost', secret);
  assert.deepEqual(decoyCredentials('SCRAM-SHA-512', 'ghost', secret), a);
  assert.notDeepEqual(decoyCredentials('SCRAM-SHA-512', 'ghost2', secret).salt, a.salt);
  assert.equal(a.storedKey.length, 64);
});

test('password file: SCRAM lines give SCRAM keys and check plain passwords; a new password replaces every line of the user; bad lines name their line', async () => {
  let text = updatePasswordFile('', 'alice', 'alice-pw', { scram: true });
  text = updatePasswordFile(text, 'bob', 'bob-pw');
  assert.match(text, /^alice:\$scram-sha-256\$10000\$.+\nalice:\$scram-sha-512\$10000\$.+\nbob:\$scrypt\$/);
  const file = PasswordFile.parse(text);
  assert.ok(file.scramCredentials('alice', 'SCRAM-SHA-256'));
  assert.ok(file.scramCredentials('alice', 'SCRAM-SHA-512'));
  assert.equal(file.scramCredentials('bob', 'SCRAM-SHA-256'), undefined, 'a scrypt hash gives no SCRAM keys');
  assert.equal(await file.verify('alice', Buffer.from('alice-pw')), true, 'a plain password against SCRAM-only lines');
  assert.equal(await file.verify('alice', Buffer.from('alice-pw!')), false);
  assert.equal(await file.verify('bob', Buffer.from('bob-pw')), true);

  const replaced = updatePasswordFile(text, 'alice', 'new-pw');
  assert.doesNotMatch(replaced, /alice:\$scram/, 'old SCRAM keys survived a password change');
  assert.equal(PasswordFile.parse(replaced).scramCredentials('alice', 'SCRAM-SHA-256'), undefined);

  const rfc = scramLine('SCRAM-SHA-256', 'pencil', 4096, Buffer.from(RFC7677.salt, 'base64'));
  const parsed = PasswordFile.parse(`user:${rfc}\n`).scramCredentials('user', 'SCRAM-SHA-256');
  assert.deepEqual(parsed, scramCredentials('SCRAM-SHA-256', 'pencil', Buffer.from(RFC7677.salt, 'base64'), 4096));
  assert.throws(() => PasswordFile.parse(`# c\nu:${rfc.replace('$4096$', '$100$')}\n`), /line 2: bad \$scram-sha-256\$ iteration count/);
  assert.throws(() => PasswordFile.parse(`u:${rfc.slice(0, -8)}\n`), /line 1: bad \$scram-sha-256\$ salt or keys/);
});
