// MQTT 5 enhanced authentication with SCRAM, against a real broker on a socket. The client side is
// node-postgres's SCRAM-SHA-256 client (pg/lib/crypto/sasl), driven through mqtt.js's enhanced
// authentication (CONNECT properties and handleAuth) or, where a test must send what mqtt.js would
// not (out-of-sequence AUTH, oversize data, silence), through the raw test client. SCRAM-SHA-512,
// which pg does not speak, runs with our own client derivations (test/scram-test-client.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { IAuthPacket, IConnackPacket, IDisconnectPacket, Packet } from 'mqtt-packet';
import { passwd, tempDir } from '../helpers';
import { RawClient, type TestBroker, withBroker } from '../mqtt-helpers';
import { TestScramClient } from '../scram-test-client';

/** node-postgres's SCRAM client (pg/lib/crypto/sasl.js has no type declarations). */
interface PgScramSession {
  response: string;
}
interface PgSasl {
  startSession(mechanisms: string[]): PgScramSession;
  continueSession(session: PgScramSession, password: string, serverFirst: string): Promise<void>;
  /** Throws unless the server-final-message carries the server signature the client expects. */
  finalizeSession(session: PgScramSession, serverFinal: string): void;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const sasl = require('pg/lib/crypto/sasl') as PgSasl;

const SHA256 = 'SCRAM-SHA-256';

/** alice: SCRAM keys (`passwd --scram`); bob: a scrypt hash only. The ACL lets each use its own topics. */
function authFiles(): { passwordFile: string; aclFile: string } {
  const dir = tempDir('iotb-scram-');
  const passwordFile = path.join(dir, 'passwords');
  passwd(passwordFile, 'alice', '--password', 'alice-pw', '--scram');
  passwd(passwordFile, 'bob', '--password', 'bob-pw');
  const aclFile = path.join(dir, 'acl');
  fs.writeFileSync(aclFile, 'user alice\ntopic readwrite alice/#\nuser bob\ntopic readwrite bob/#\n');
  return { passwordFile, aclFile };
}

/** mqtt.js + pg: CONNECT with the client-first-message, AUTH with the client-final, and the CONNACK's v= checked by pg. */
function scramConnect(port: number, clientId: string, username: string | undefined, password: string, method = SHA256): Promise<MqttClient> {
  const session = sasl.startSession([SHA256]);
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({
      host: '127.0.0.1',
      port,
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      clientId,
      username,
      properties: { authenticationMethod: method, authenticationData: Buffer.from(session.response) },
    });
    client.handleAuth = (packet, callback) => {
      sasl.continueSession(session, password, packet.properties?.authenticationData?.toString() ?? '').then(
        () => callback(undefined, { cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: method, authenticationData: Buffer.from(session.response) } }),
        (e: Error) => callback(e),
      );
    };
    const fail = (e: Error): void => {
      client.end(true);
      reject(e);
    };
    client.once('error', fail);
    client.once('connect', (connack: IConnackPacket) => {
      try {
        assert.equal(connack.properties?.authenticationMethod, method);
        sasl.finalizeSession(session, connack.properties?.authenticationData?.toString() ?? '');
        client.off('error', fail);
        resolve(client);
      } catch (e) {
        fail(e as Error);
      }
    });
  });
}

const refusedWith = (code: number) => (e: Error & { code?: number }) => e.code === code;

/** The raw client's exchange up to the server-first-message (pg makes the client-first). */
async function startExchange(port: number, clientId: string, username = 'alice'): Promise<{ client: RawClient; session: PgScramSession; serverFirst: string }> {
  const session = sasl.startSession([SHA256]);
  const client = await RawClient.open(port, 5);
  client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId, username, properties: { authenticationMethod: SHA256, authenticationData: Buffer.from(session.response) } });
  const auth = (await client.take('auth')) as IAuthPacket;
  assert.equal(auth.reasonCode, 0x18);
  assert.equal(auth.properties?.authenticationMethod, SHA256);
  return { client, session, serverFirst: auth.properties?.authenticationData?.toString() ?? '' };
}

const authPacket = (reasonCode: number, data: Buffer | string, method = SHA256): Packet => ({ cmd: 'auth', reasonCode, properties: { authenticationMethod: method, authenticationData: Buffer.from(data) } });

/** A connection authenticated by SCRAM through the raw client (for the tests of what follows the CONNACK). */
async function rawScramConnected(b: TestBroker, clientId: string): Promise<RawClient> {
  const { client, session, serverFirst } = await startExchange(b.port, clientId);
  await sasl.continueSession(session, 'alice-pw', serverFirst);
  client.send(authPacket(0x18, session.response));
  const connack = (await client.take('connack')) as IConnackPacket;
  assert.equal(connack.reasonCode, 0);
  return client;
}

async function expectCode(client: RawClient, cmd: 'connack' | 'disconnect', code: number): Promise<void> {
  const packet = (await client.take(cmd, () => true, 10_000)) as IConnackPacket | IDisconnectPacket;
  assert.equal(packet.reasonCode, code, `${cmd} ${packet.reasonCode} (${packet.properties?.reasonString ?? ''})`);
  await client.waitClosed(10_000);
}

test('SCRAM-SHA-256 with node-postgres\'s client through mqtt.js: CONNACK 0x00 with v= that pg verifies, and the client is its user for the ACL (n=* takes the User Name)', async () => {
  await withBroker(async (b, track) => {
    const client = track(await scramConnect(b.port, 'scram-ok', 'alice', 'alice-pw'));
    const granted = await client.subscribeAsync('alice/t', { qos: 1 });
    assert.deepEqual(granted.map((g) => g.qos), [1]);
    await assert.rejects(client.subscribeAsync('bob/t', { qos: 1 }), (e: Error & { packet?: { granted?: number[] } }) => e.packet?.granted?.[0] === 0x87);
    const got = new Promise<string>((resolve) => client.once('message', (_t, payload) => resolve(payload.toString())));
    await client.publishAsync('alice/t', 'after SCRAM', { qos: 1 });
    assert.equal(await got, 'after SCRAM');
  }, authFiles());
});

test('SCRAM refusals: wrong password 0x86, unknown user 0x86, a user with only a scrypt hash 0x86, no User Name for n=* 0x86, unknown method 0x8C; plain passwords still work for both users', async () => {
  await withBroker(async (b, track) => {
    await assert.rejects(scramConnect(b.port, 'wrong', 'alice', 'alice-pw!'), refusedWith(0x86), 'wrong password');
    await assert.rejects(scramConnect(b.port, 'ghost', 'nobody', 'whatever'), refusedWith(0x86), 'unknown user');
    await assert.rejects(scramConnect(b.port, 'scrypt-only', 'bob', 'bob-pw'), refusedWith(0x86), 'a user without SCRAM keys');
    await assert.rejects(scramConnect(b.port, 'no-user', undefined, 'alice-pw'), refusedWith(0x86), 'n=* without a User Name');
    await assert.rejects(scramConnect(b.port, 'sha1', 'alice', 'alice-pw', 'SCRAM-SHA-1'), refusedWith(0x8c), 'unknown method');
    for (const [username, password] of [['alice', 'alice-pw'], ['bob', 'bob-pw']]) {
      const plain = track(await mqtt.connectAsync({ host: '127.0.0.1', port: b.port, protocolVersion: 5, reconnectPeriod: 0, clientId: `plain-${username}`, username, password }));
      assert.ok(plain.connected, `${username} with a plain password`);
    }
  }, authFiles());
});

test('SCRAM-SHA-512 through the broker, with our own client derivations (pg has no SHA-512): CONNACK 0x00 with a server signature that verifies; a wrong password 0x86', async () => {
  await withBroker(async (b) => {
    for (const [password, expected] of [['alice-pw', 0], ['alice-pw!', 0x86]] as const) {
      const scram = new TestScramClient('SCRAM-SHA-512', 'alice');
      const client = await RawClient.open(b.port, 5);
      try {
        client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId: 'sha512', properties: { authenticationMethod: 'SCRAM-SHA-512', authenticationData: Buffer.from(scram.clientFirst) } });
        const auth = (await client.take('auth')) as IAuthPacket;
        client.send(authPacket(0x18, scram.clientFinal(auth.properties?.authenticationData?.toString() ?? '', password), 'SCRAM-SHA-512'));
        const connack = (await client.take('connack')) as IConnackPacket;
        assert.equal(connack.reasonCode, expected);
        if (expected === 0) assert.equal(scram.serverVerified(connack.properties?.authenticationData?.toString() ?? ''), true);
      } finally {
        client.destroy();
      }
    }
  }, authFiles());
});

test('AUTH out of sequence or with another method: CONNACK 0x82 during the exchange, DISCONNECT 0x82 after the CONNACK', async () => {
  await withBroker(async (b, track) => {
    const reauthMidway = track((await startExchange(b.port, 'oos-1')).client);
    reauthMidway.send(authPacket(0x19, 'n,,n=*,r=abc'));
    await expectCode(reauthMidway, 'connack', 0x82);

    const otherMethod = await startExchange(b.port, 'oos-2');
    track(otherMethod.client);
    await sasl.continueSession(otherMethod.session, 'alice-pw', otherMethod.serverFirst);
    otherMethod.client.send(authPacket(0x18, otherMethod.session.response, 'SCRAM-SHA-512'));
    await expectCode(otherMethod.client, 'connack', 0x82);

    const { client: plain, connack } = await RawClient.connect(b.port, 5, { clientId: 'oos-3', username: 'bob', password: Buffer.from('bob-pw') });
    track(plain);
    assert.equal((connack as IConnackPacket).reasonCode, 0);
    plain.send(authPacket(0x19, 'n,,n=*,r=abc'));
    await expectCode(plain, 'disconnect', 0x82); // no Authentication Method in its CONNECT

    const scram = track(await rawScramConnected(b, 'oos-4'));
    scram.send(authPacket(0x18, 'c=biws,r=x,p=AAAA'));
    await expectCode(scram, 'disconnect', 0x82); // 0x18 with no exchange going on
  }, authFiles());
});

test('Authentication Data over maxAuthDataSize: CONNACK 0x95, in CONNECT and in AUTH', async () => {
  await withBroker(async (b, track) => {
    const big = track(await RawClient.open(b.port, 5));
    big.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId: 'big-1', username: 'alice', properties: { authenticationMethod: SHA256, authenticationData: Buffer.alloc(300, 'a') } });
    await expectCode(big, 'connack', 0x95);

    const { client } = await startExchange(b.port, 'big-2');
    track(client);
    client.send(authPacket(0x18, Buffer.alloc(257, 'c')));
    await expectCode(client, 'connack', 0x95);
  }, { ...authFiles(), maxAuthDataSize: 256 });
});

test('a client that stops mid-exchange is refused (CONNACK 0x87) and disconnected after connectTimeoutMs; one that stops re-authenticating gets DISCONNECT 0x87', async () => {
  await withBroker(async (b, track) => {
    const { client } = await startExchange(b.port, 'silent-1');
    track(client);
    await expectCode(client, 'connack', 0x87); // bounded: expectCode waits 10 s at most

    const reauth = track(await rawScramConnected(b, 'silent-2'));
    reauth.send(authPacket(0x19, sasl.startSession([SHA256]).response));
    assert.equal(((await reauth.take('auth')) as IAuthPacket).reasonCode, 0x18);
    await expectCode(reauth, 'disconnect', 0x87);
  }, { ...authFiles(), connectTimeoutMs: 1000 });
});

test('re-authentication (AUTH 0x19) with the same method: AUTH 0x00 with v= that pg verifies, the connection carries on; a wrong password gets DISCONNECT 0x87', async () => {
  await withBroker(async (b, track) => {
    const client = track(await rawScramConnected(b, 'reauth'));
    for (const password of ['alice-pw', 'alice-pw!']) {
      const session = sasl.startSession([SHA256]);
      client.send(authPacket(0x19, session.response));
      const serverFirst = (await client.take('auth')) as IAuthPacket;
      assert.equal(serverFirst.reasonCode, 0x18);
      await sasl.continueSession(session, password, serverFirst.properties?.authenticationData?.toString() ?? '');
      client.send(authPacket(0x18, session.response));
      if (password !== 'alice-pw') {
        await expectCode(client, 'disconnect', 0x87);
        break;
      }
      const done = (await client.take('auth')) as IAuthPacket;
      assert.equal(done.reasonCode, 0);
      sasl.finalizeSession(session, done.properties?.authenticationData?.toString() ?? '');
      client.send({ cmd: 'pingreq' });
      await client.take('pingresp');
    }
    assert.ok(client.closed);
  }, authFiles());
});
