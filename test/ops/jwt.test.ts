// JWT as the MQTT password, with real clients (mqtt.js, mosquitto_pub, raw MQTT 5 and 3.1.1):
// HS256 secrets, RS256 and ES256 public key files, a JWKS file picked by kid; refusals (expired,
// wrong signature, malformed, user name mismatch, anonymous) answered 0x86 / 4 and never logging
// the token; the topics claim limiting PUBLISH and SUBSCRIBE; a key switched by a reload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SignJWT, type JWTPayload } from 'jose';
import { hashPassword } from '../../src/auth/password-file';
import { startBroker } from '../../src/index';
import { ConfigError, defaultConfig, loadConfig } from '../../src/ops/config';
import { RawClient } from '../mqtt-helpers';
import { collect, connect, endClient, runClient, skipWithout, tempDir } from '../helpers';
import { connackOf, recordingLogger, withAuthBroker } from './auth-helpers';

const skipMosquitto = skipWithout(['mosquitto_pub']);
const HOUR = 3600;
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** A signed token for `sub`, valid for an hour unless `claims` say otherwise. */
function sign(key: KeyObject | Uint8Array, alg: string, claims: JWTPayload, kid?: string): Promise<string> {
  return new SignJWT({ exp: nowSeconds() + HOUR, ...claims }).setProtectedHeader({ alg, kid }).setIssuedAt().sign(key);
}

function writeFile(name: string, content: string): string {
  const file = path.join(tempDir('iotb-jwt-'), name);
  fs.writeFileSync(file, content, { mode: 0o600 });
  return file;
}

const pem = (key: KeyObject): string => key.export({ type: 'spki', format: 'pem' }).toString();
const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
const p256 = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });

test('HS256: mqtt.js (MQTT 5 and 3.1.1) and a raw MQTT 5 CONNECT with only a password get in; refusals are 0x86 / 4 and 0x87 / 5; no token is logged', async () => {
  const secret = randomBytes(32).toString('base64url');
  const key = new TextEncoder().encode(secret);
  const good = await sign(key, 'HS256', { sub: 'alice' });
  const expired = await sign(key, 'HS256', { sub: 'alice', exp: nowSeconds() - HOUR });
  const notYet = await sign(key, 'HS256', { sub: 'alice', nbf: nowSeconds() + HOUR });
  const noExpiry = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'HS256' }).sign(key);
  const otherSecret = await sign(randomBytes(32), 'HS256', { sub: 'alice' });
  const noUser = await sign(key, 'HS256', { name: 'alice' });
  const [header, payload] = good.split('.');
  const forged = `${header}.${Buffer.from(JSON.stringify({ sub: 'root', exp: nowSeconds() + HOUR })).toString('base64url')}.${good.split('.')[2]}`;
  const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`;
  const lines: string[] = [];
  await withAuthBroker(
    { jwtSecret: secret },
    async (port, running) => {
      for (const protocolVersion of [5, 4] as const) {
        const client = await connect(port, { protocolVersion, clientId: `mqttjs-${protocolVersion}`, username: 'alice', password: good });
        const inbox = collect(client);
        await client.subscribeAsync('alice/t', { qos: 1 });
        await client.publishAsync('alice/t', 'hello', { qos: 1 });
        assert.equal((await inbox.waitFor(1))[0]!.payload.toString(), 'hello');
        await endClient(client);
      }
      await assert.rejects(connect(port, { protocolVersion: 5, clientId: 'mqttjs-expired', username: 'alice', password: expired }), /Bad User Name or Password|134/i);

      // MQTT 5 allows a password without a user name (3.1.1 does not): the token alone names the user.
      const raw = await RawClient.open(port, 5);
      raw.writeRaw(connectWithPasswordOnly('raw-token-only', good));
      assert.equal((await raw.take('connack')).reasonCode, 0);
      await raw.destroy();

      const refusedBefore = running.broker.stats.connectionsRefused;
      const refusals: [string, 4 | 5, { username?: string; password?: string }, number][] = [
        ['expired', 5, { username: 'alice', password: expired }, 0x86],
        ['expired, 3.1.1', 4, { username: 'alice', password: expired }, 4],
        ['not yet valid', 5, { username: 'alice', password: notYet }, 0x86],
        ['without exp', 5, { username: 'alice', password: noExpiry }, 0x86],
        ['signed with another secret', 5, { username: 'alice', password: otherSecret }, 0x86],
        ['payload changed, signature kept', 5, { username: 'root', password: forged }, 0x86],
        ['alg none', 5, { username: 'alice', password: unsigned }, 0x86],
        ['malformed: not three parts', 5, { username: 'alice', password: 'not-a-token' }, 0x86],
        ['malformed: three parts, not JSON', 4, { username: 'alice', password: 'abc.def.ghi' }, 4],
        ['no sub claim', 5, { username: 'alice', password: noUser }, 0x86],
        ['user name is not the sub', 5, { username: 'mallory', password: good }, 0x86],
        ['user name is not the sub, 3.1.1', 4, { username: 'mallory', password: good }, 4],
        ['user name without a password', 5, { username: 'alice' }, 0x86],
        ['anonymous', 5, {}, 0x87],
        ['anonymous, 3.1.1', 4, {}, 5],
      ];
      for (const [what, version, credentials, expected] of refusals) {
        const code = await connackOf(port, version, { clientId: `refused-${what.replace(/\W+/g, '-')}`, username: credentials.username, password: credentials.password === undefined ? undefined : Buffer.from(credentials.password) });
        assert.equal(code, expected, what);
      }
      assert.equal(running.broker.stats.connectionsRefused - refusedBefore, refusals.length, 'every refusal counted');
    },
    recordingLogger(lines),
  );
  const log = lines.join('\n');
  assert.match(log, /ERR_JWT_EXPIRED.*bad JWT/);
  assert.match(log, /ERR_JWS_SIGNATURE_VERIFICATION_FAILED.*bad JWT/);
  for (const token of [good, expired, notYet, noExpiry, otherSecret, forged, noUser]) {
    for (const part of token.split('.').filter((p) => p.length > 0)) assert.ok(!log.includes(part), 'a token (or part of one) reached the log');
  }
  assert.ok(!log.includes(secret), 'the secret reached the log');
});

test('issuer and audience, when configured, must match', async () => {
  const secret = randomBytes(32).toString('hex');
  const key = new TextEncoder().encode(secret);
  await withAuthBroker({ jwtSecret: secret, jwtIssuer: 'https://issuer.example', jwtAudience: 'iot-bridge' }, async (port) => {
    const right = await sign(key, 'HS256', { sub: 'd1', iss: 'https://issuer.example', aud: ['other', 'iot-bridge'] });
    const wrongIssuer = await sign(key, 'HS256', { sub: 'd1', iss: 'https://other.example', aud: 'iot-bridge' });
    const noAudience = await sign(key, 'HS256', { sub: 'd1', iss: 'https://issuer.example' });
    assert.equal(await connackOf(port, 5, { clientId: 'a', username: 'd1', password: Buffer.from(right) }), 0);
    assert.equal(await connackOf(port, 5, { clientId: 'b', username: 'd1', password: Buffer.from(wrongIssuer) }), 0x86);
    assert.equal(await connackOf(port, 5, { clientId: 'c', username: 'd1', password: Buffer.from(noAudience) }), 0x86);
  });
});

test('RS256 and ES256 public key files (PEM); a token signed by another key, or with the other algorithm, is refused', async () => {
  for (const [alg, pair, other] of [['RS256', rsa(), rsa()], ['ES256', p256(), p256()]] as const) {
    const file = writeFile(`${alg}.pem`, pem(pair.publicKey));
    await withAuthBroker({ jwtPublicKeyFile: file }, async (port) => {
      const client = await connect(port, { protocolVersion: 5, clientId: `pk-${alg}`, username: 'dev-1', password: await sign(pair.privateKey, alg, { sub: 'dev-1' }) });
      await endClient(client);
      assert.equal(await connackOf(port, 4, { clientId: 'pk-v4', username: 'dev-1', password: Buffer.from(await sign(pair.privateKey, alg, { sub: 'dev-1' })) }), 0, `${alg}, 3.1.1`);
      assert.equal(await connackOf(port, 5, { clientId: 'pk-other', username: 'dev-1', password: Buffer.from(await sign(other.privateKey, alg, { sub: 'dev-1' })) }), 0x86, `${alg}: another key`);
      // Algorithm confusion: an HS256 token "signed" with the public key's PEM as the secret.
      const confused = await sign(new TextEncoder().encode(pem(pair.publicKey)), 'HS256', { sub: 'dev-1' });
      assert.equal(await connackOf(port, 5, { clientId: 'pk-hs', username: 'dev-1', password: Buffer.from(confused) }), 0x86, `${alg}: HS256 with the public key as secret`);
    });
  }
});

test('JWKS file: the kid picks the key (RSA and P-256); an unknown kid or a foreign key under a known kid is refused; mosquitto_pub -P <jwt>', async () => {
  const r = rsa();
  const e = p256();
  const jwks = { keys: [{ ...r.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', use: 'sig' }, { ...e.publicKey.export({ format: 'jwk' }), kid: 'ec-1' }] };
  const file = writeFile('jwks.json', JSON.stringify(jwks));
  await withAuthBroker({ jwtJwksFile: file }, async (port) => {
    const byRsa = await sign(r.privateKey, 'RS256', { sub: 'dev-2' }, 'rsa-1');
    const byEc = await sign(e.privateKey, 'ES256', { sub: 'dev-2' }, 'ec-1');
    assert.equal(await connackOf(port, 5, { clientId: 'k1', username: 'dev-2', password: Buffer.from(byRsa) }), 0);
    assert.equal(await connackOf(port, 5, { clientId: 'k2', username: 'dev-2', password: Buffer.from(byEc) }), 0);
    assert.equal(await connackOf(port, 5, { clientId: 'k3', username: 'dev-2', password: Buffer.from(await sign(r.privateKey, 'RS256', { sub: 'dev-2' }, 'rsa-2')) }), 0x86, 'unknown kid');
    assert.equal(await connackOf(port, 5, { clientId: 'k4', username: 'dev-2', password: Buffer.from(await sign(rsa().privateKey, 'RS256', { sub: 'dev-2' }, 'rsa-1')) }), 0x86, 'foreign key, known kid');

    if (skipMosquitto) return;
    const base = ['-h', '127.0.0.1', '-p', String(port), '-u', 'dev-2', '-t', 'dev/2/t', '-m', 'from mosquitto_pub'];
    const ok = await runClient('mosquitto_pub', [...base, '-P', byEc]);
    assert.equal(ok.status, 0, ok.stderr);
    const expired = await runClient('mosquitto_pub', [...base, '-P', await sign(e.privateKey, 'ES256', { sub: 'dev-2', exp: nowSeconds() - HOUR }, 'ec-1')]);
    assert.notEqual(expired.status, 0);
    assert.match(expired.stderr, /not authori[sz]ed|bad user name or password|Connection Refused/i);
  });
});

test('the topics claim limits PUBLISH (PUBACK 0x87, nothing delivered) and SUBSCRIBE (SUBACK 0x87), on top of the ACL file', async () => {
  const secret = randomBytes(32).toString('hex');
  const key = new TextEncoder().encode(secret);
  // The ACL allows alice a/# and b/#; her token narrows that to a/# and z/# for publish, b/+ for subscribe.
  const acl = writeFile('acl', 'user alice\ntopic readwrite a/#\ntopic readwrite b/#\nuser watcher\ntopic read #\n');
  await withAuthBroker({ jwtSecret: secret, aclFile: acl }, async (port) => {
    const { client: watcher } = await RawClient.connect(port, 5, { clientId: 'watcher', username: 'watcher', password: Buffer.from(await sign(key, 'HS256', { sub: 'watcher' })) });
    assert.deepEqual((await watcher.subscribe('#', 1)).granted, [1]);
    const token = await sign(key, 'HS256', { sub: 'alice', acl: { pub: ['a/#', 'z/#'], sub: ['b/+'] } });
    const { client: alice, connack } = await RawClient.connect(port, 5, { clientId: 'alice-1', username: 'alice', password: Buffer.from(token) });
    assert.equal(connack.reasonCode, 0);
    const published: [string, number][] = [['z/1', 0x87], ['c/1', 0x87], ['b/1', 0x87], ['a/1', 0]];
    for (const [i, [topic, expected]] of published.entries()) {
      alice.publish(topic, topic, 1, i + 1);
      assert.equal((await alice.take('puback', (p) => p.messageId === i + 1)).reasonCode ?? 0, expected, `publish ${topic}`);
    }
    const first = await watcher.take('publish');
    assert.equal(first.topic, 'a/1', 'a refused publish was delivered');
    assert.deepEqual((await alice.subscribe('b/+', 1)).granted, [1]);
    assert.deepEqual((await alice.subscribe('$share/g/b/x', 1)).granted, [1]);
    assert.deepEqual((await alice.subscribe('b/#', 1)).granted, [0x87], 'b/+ does not cover b/#');
    assert.deepEqual((await alice.subscribe('a/1', 1)).granted, [0x87], 'publish-only');
    // 3.1.1: the same limits, refused publishes acknowledged and dropped, refused filters 0x80.
    const { client: alice4 } = await RawClient.connect(port, 4, { clientId: 'alice-4', username: 'alice', password: Buffer.from(token) });
    assert.deepEqual((await alice4.subscribe('c/#', 1)).granted, [0x80]);
    alice4.publish('c/2', 'dropped', 1, 7);
    await alice4.take('puback', (p) => p.messageId === 7);
    alice4.publish('a/2', 'allowed', 1, 8);
    await alice4.take('puback', (p) => p.messageId === 8);
    assert.equal((await watcher.take('publish')).topic, 'a/2', 'a refused 3.1.1 publish was delivered');
    // A will is a publish: outside the token's topics it is refused at CONNECT.
    const willer = await connackOf(port, 5, { clientId: 'alice-will', username: 'alice', password: Buffer.from(token), will: { topic: 'b/will', payload: Buffer.from('w'), qos: 0, retain: false } });
    assert.equal(willer, 0x87);
    // A malformed topics claim refuses the token rather than allowing everything.
    for (const bad of [{ pub: 'a/#' }, { pub: ['a/#'], publish: ['#'] }, { sub: ['a/#/b'] }, ['a/#']]) {
      assert.equal(await connackOf(port, 5, { clientId: 'bad-claim', username: 'alice', password: Buffer.from(await sign(key, 'HS256', { sub: 'alice', acl: bad })) }), 0x86, JSON.stringify(bad));
    }
    for (const c of [watcher, alice, alice4]) await c.destroy();
  });
});

test('reload switches the key: old tokens refused, new ones accepted; a key file that does not parse keeps the previous key', async () => {
  const first = randomBytes(32).toString('hex');
  const second = randomBytes(32).toString('hex');
  const file = writeFile('secret', `${first}\n`);
  const lines: string[] = [];
  await withAuthBroker(
    { jwtSecretFile: file },
    async (port, running) => {
      const oldToken = Buffer.from(await sign(new TextEncoder().encode(first), 'HS256', { sub: 'eve' }));
      const newToken = Buffer.from(await sign(new TextEncoder().encode(second), 'HS256', { sub: 'eve' }));
      assert.equal(await connackOf(port, 5, { clientId: 'e', username: 'eve', password: oldToken }), 0);
      fs.writeFileSync(file, `${second}\n`);
      assert.equal(await connackOf(port, 5, { clientId: 'e', username: 'eve', password: newToken }), 0x86, 'not before the reload');
      assert.equal(running.reload(), undefined);
      assert.equal(await connackOf(port, 5, { clientId: 'e', username: 'eve', password: oldToken }), 0x86, 'the old key is gone');
      assert.equal(await connackOf(port, 5, { clientId: 'e', username: 'eve', password: newToken }), 0);
      fs.writeFileSync(file, 'short\n');
      assert.match(String(running.reload()?.message), /at least 32 bytes/);
      assert.equal(await connackOf(port, 5, { clientId: 'e', username: 'eve', password: newToken }), 0, 'the previous key stays');
    },
    recordingLogger(lines),
  );
  const log = lines.join('\n');
  assert.ok(!log.includes(first) && !log.includes(second), 'a secret reached the log');
});

test('a password file and JWT together: a password that looks like a JWT is a token, any other is checked against the file', async () => {
  const secret = randomBytes(32).toString('hex');
  const passwords = writeFile('passwords', `alice:${hashPassword('alice-pw')}\n`);
  await withAuthBroker({ jwtSecret: secret, passwordFile: passwords }, async (port) => {
    const bobToken = Buffer.from(await sign(new TextEncoder().encode(secret), 'HS256', { sub: 'bob' }));
    assert.equal(await connackOf(port, 5, { clientId: 'p1', username: 'alice', password: Buffer.from('alice-pw') }), 0);
    assert.equal(await connackOf(port, 5, { clientId: 'p2', username: 'alice', password: Buffer.from('wrong') }), 0x86);
    assert.equal(await connackOf(port, 5, { clientId: 'p3', username: 'bob', password: bobToken }), 0);
    assert.equal(await connackOf(port, 5, { clientId: 'p4', username: 'alice', password: bobToken }), 0x86, 'the token is bob\'s');
    assert.equal(await connackOf(port, 5, { clientId: 'p5' }), 0x87, 'anonymous');
  });
});

test('JWT configuration errors are clear: two key sources, a short secret, a key of the wrong kind, a JWKS with a private key', async () => {
  assert.throws(() => loadConfig(['--jwt-secret', 'x'.repeat(32), '--jwt-public-key-file', '/k.pem'], {}), (e: Error) => e instanceof ConfigError && /one JWT key source at most/.test(e.message));
  assert.throws(() => loadConfig(['--jwt-issuer', 'me'], {}), /jwtIssuer and jwtAudience need a JWT key/);
  const base = { ...defaultConfig, host: '127.0.0.1', port: 0, store: 'memory' as const };
  await assert.rejects(startBroker({ ...base, jwtSecret: 'too-short' }, recordingLogger([])), /at least 32 bytes, got 9/);
  const ed = generateKeyPairSync('ed25519');
  await assert.rejects(startBroker({ ...base, jwtPublicKeyFile: writeFile('ed.pem', pem(ed.publicKey)) }, recordingLogger([])), /RSA key of at least 2048 bits \(RS256\) or a P-256 key/);
  await assert.rejects(startBroker({ ...base, jwtPublicKeyFile: writeFile('junk.pem', 'not a key') }, recordingLogger([])), /not a PEM public key/);
  const privateJwk = { keys: [{ ...p256().privateKey.export({ format: 'jwk' }), kid: 'x' }] };
  await assert.rejects(startBroker({ ...base, jwtJwksFile: writeFile('jwks.json', JSON.stringify(privateJwk)) }, recordingLogger([])), /key 1: holds a private key/);
  await assert.rejects(startBroker({ ...base, jwtJwksFile: writeFile('jwks.json', '{"keys": []}') }, recordingLogger([])), /at least one key/);
});

/** An MQTT 5 CONNECT with the password flag and no user name flag, which mqtt-packet will not generate. */
function connectWithPasswordOnly(clientId: string, password: string): Buffer {
  const str = (s: string): Buffer => {
    const b = Buffer.from(s);
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  };
  const variable = Buffer.concat([str('MQTT'), Buffer.from([5, 0x40 | 0x02, 0, 0, 0])]); // version 5, password + clean start, keep alive 0, no properties
  const body = Buffer.concat([variable, str(clientId), str(password)]);
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]);
}

function remainingLength(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    bytes.push(byte);
  } while (n > 0);
  return Buffer.from(bytes);
}
