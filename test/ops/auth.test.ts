// Authentication and authorization from files, with real clients: a password file written by
// `iot-bridge passwd` (the real CLI) and one written by Mosquitto's `mosquitto_passwd`, mqtt.js
// and mosquitto_pub/sub, MQTT 5 and 3.1.1 refusal codes, an ACL file, SIGHUP-style reload, and
// no password in the logs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PasswordFile } from '../../src/auth/password-file';
import { loadConfig } from '../../src/ops/config';
import { RawClient } from '../mqtt-helpers';
import { collect, connect, passwd, runClient, skipWithout, tempDir } from '../helpers';
import { connackOf, recordingLogger, withAuthBroker } from './auth-helpers';

const skipMosquitto = skipWithout(['mosquitto_passwd', 'mosquitto_pub', 'mosquitto_sub']);

test('password file from `iot-bridge passwd`: right password in, wrong one 0x86 / 4, anonymous 0x87 / 5, nothing secret logged', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'passwords');
  passwd(file, 'alice', '--password', 'alice-secret-1');
  passwd(file, 'bob', '--password', 'bob-secret-2');
  passwd(file, 'bob', '--delete');
  assert.match(fs.readFileSync(file, 'utf8'), /^alice:\$scrypt\$/);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  const lines: string[] = [];
  await withAuthBroker(
    { passwordFile: file },
    async (port) => {
      const good = Buffer.from('alice-secret-1');
      assert.equal(await connackOf(port, 5, { clientId: 'c1', username: 'alice', password: good }), 0);
      assert.equal(await connackOf(port, 4, { clientId: 'c2', username: 'alice', password: good }), 0);
      assert.equal(await connackOf(port, 5, { clientId: 'c3', username: 'alice', password: Buffer.from('wrong-password-3') }), 0x86);
      assert.equal(await connackOf(port, 4, { clientId: 'c4', username: 'alice', password: Buffer.from('wrong-password-3') }), 4);
      assert.equal(await connackOf(port, 5, { clientId: 'c5', username: 'bob', password: Buffer.from('bob-secret-2') }), 0x86, 'a deleted user');
      assert.equal(await connackOf(port, 5, { clientId: 'c6' }), 0x87, 'anonymous');
      assert.equal(await connackOf(port, 4, { clientId: 'c7' }), 5, 'anonymous, 3.1.1');
    },
    recordingLogger(lines),
  );
  const log = lines.join('\n');
  assert.match(log, /bad user name or password/);
  for (const secret of ['alice-secret-1', 'wrong-password-3', 'bob-secret-2']) assert.ok(!log.includes(secret), `the log contains ${secret}`);
});

test('allowAnonymous=true with a password file lets clients without a user name in', async () => {
  const file = path.join(tempDir(), 'passwords');
  passwd(file, 'alice', '--password', 'pw-alice');
  await withAuthBroker({ passwordFile: file, allowAnonymous: 'true' }, async (port) => {
    assert.equal(await connackOf(port, 5, { clientId: 'anon' }), 0);
    assert.equal(await connackOf(port, 5, { clientId: 'x', username: 'alice', password: Buffer.from('nope') }), 0x86);
  });
});

test('a Mosquitto password file ($7$ from mosquitto_passwd) works as it is, with mosquitto_pub and mosquitto_sub', { skip: skipMosquitto }, async () => {
  const file = path.join(tempDir(), 'mosquitto.passwd');
  const made = spawnSync('mosquitto_passwd', ['-b', '-c', file, 'device7', 'dev-pw-7'], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  assert.match(fs.readFileSync(file, 'utf8'), /^device7:\$7\$/);
  await withAuthBroker({ passwordFile: file }, async (port) => {
    // No sleeps: a persistent session subscribes and leaves (-E), the message is queued for it, and it comes back for it.
    const common = ['-h', '127.0.0.1', '-p', String(port), '-u', 'device7', '-P', 'dev-pw-7'];
    const session = [...common, '-c', '-i', 'dev7-sub', '-q', '1', '-t', 'm/t'];
    const subscribed = await runClient('mosquitto_sub', [...session, '-E']);
    assert.equal(subscribed.status, 0, subscribed.stderr);
    const pub = await runClient('mosquitto_pub', [...common, '-t', 'm/t', '-m', 'hello', '-q', '1']);
    assert.equal(pub.status, 0, pub.stderr);
    const sub = await runClient('mosquitto_sub', [...session, '-C', '1', '-W', '10'], 15_000);
    assert.equal(sub.stdout.trim(), 'hello', sub.stderr);
    const bad = await runClient('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', 'device7', '-P', 'wrong', '-t', 'm/t', '-m', 'x']);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /not authori[sz]ed|bad user name or password|Connection Refused/i);
  });
});

test('a Mosquitto 1.x $6$ (salted SHA-512) line verifies', async () => {
  const salt = randomBytes(12);
  const hash = createHash('sha512').update('old-pw').update(salt).digest();
  const file = PasswordFile.parse(`legacy:$6$${salt.toString('base64')}$${hash.toString('base64')}\n`);
  assert.equal(await file.verify('legacy', Buffer.from('old-pw')), true);
  assert.equal(await file.verify('legacy', Buffer.from('old-pw!')), false);
  assert.equal(await file.verify('nobody', Buffer.from('old-pw')), false);
  assert.throws(() => PasswordFile.parse('x:$1$abc$def\n'), /line 1: unknown hash format/);
});

test('ACL file: PUBLISH 0x87 (3.1.1: acknowledged, not delivered), SUBSCRIBE 0x87 / 0x80, will on a refused topic CONNACK 0x87', async () => {
  const acl = path.join(tempDir(), 'acl');
  fs.writeFileSync(acl, 'topic read in/#\npattern readwrite own/%c/#\n');
  await withAuthBroker({ aclFile: acl }, async (port) => {
    const { client: watcher } = await RawClient.connect(port, 5, { clientId: 'w' });
    const granted = await watcher.subscribe('own/w/#', 1);
    assert.deepEqual(granted.granted, [1]);
    const refusedSub = await watcher.subscribe('out/#', 1);
    assert.deepEqual(refusedSub.granted, [0x87]);

    const { client: pub5 } = await RawClient.connect(port, 5, { clientId: 'p5' });
    pub5.publish('own/w/x', 'not mine', 1, 1);
    const ack = await pub5.take('puback');
    assert.equal(ack.reasonCode, 0x87);

    const { client: pub4 } = await RawClient.connect(port, 4, { clientId: 'p4' });
    const sub4 = await pub4.subscribe('out/#', 1);
    assert.deepEqual(sub4.granted, [0x80]);
    pub4.publish('own/w/y', 'also not mine', 1, 2);
    const ack4 = await pub4.take('puback');
    assert.equal(ack4.messageId, 2);

    watcher.publish('own/w/z', 'mine', 1, 9); // allowed: the marker
    const got = await watcher.take('publish');
    assert.equal(got.payload.toString(), 'mine', 'a refused publish was delivered');

    assert.equal(await connackOf(port, 5, { clientId: 'willer', will: { topic: 'in/x', payload: Buffer.from('w'), qos: 0, retain: false } }), 0x87);
    for (const c of [watcher, pub5, pub4]) await c.destroy();
  });
});

test('ACL rules in the config add to the ACL file as a second file would: user lines do not carry over, a deny in either wins', async () => {
  const acl = path.join(tempDir(), 'acl');
  fs.writeFileSync(acl, 'user alice\ntopic readwrite a/#\n');
  // The first rule has no `user` line before it in the config: it is for anonymous clients, not the file's alice.
  const aclRules = ['topic read public/#', 'user alice', 'topic deny a/secret', 'user bob', 'topic write b/#'];
  await withAuthBroker({ aclFile: acl, aclRules }, async (port) => {
    const { client: alice } = await RawClient.connect(port, 5, { clientId: 'cfg-alice', username: 'alice' });
    assert.deepEqual((await alice.subscribe('a/#', 1)).granted, [1], 'the file grants alice a/#');
    assert.deepEqual((await alice.subscribe('public/#', 1)).granted, [0x87], 'the config\'s first rule is not alice\'s');
    alice.publish('a/secret', 'no', 1, 1);
    assert.equal((await alice.take('puback')).reasonCode, 0x87, 'the config\'s deny wins over the file\'s grant');
    alice.publish('a/open', 'yes', 1, 2);
    assert.equal((await alice.take('puback')).reasonCode ?? 0, 0);
    const { client: anonymous } = await RawClient.connect(port, 5, { clientId: 'cfg-anon' });
    assert.deepEqual((await anonymous.subscribe('public/#', 1)).granted, [1]);
    const { client: bob } = await RawClient.connect(port, 5, { clientId: 'cfg-bob', username: 'bob' });
    bob.publish('b/x', 'yes', 1, 3);
    assert.equal((await bob.take('puback')).reasonCode ?? 0, 0);
    assert.deepEqual((await bob.subscribe('a/#', 1)).granted, [0x87]);
    for (const c of [alice, anonymous, bob]) await c.destroy();
  });
  assert.throws(() => loadConfig(['--acl-rules', 'frobnicate a/#']), /aclRules.*line 1/);
});

test('ACL read rules apply to every message sent: a deny inside a granted filter, retained messages, and rules reloaded after the SUBSCRIBE', async () => {
  const acl = path.join(tempDir(), 'acl');
  fs.writeFileSync(acl, 'user reader\ntopic read rd/#\ntopic deny rd/secret\nuser writer\ntopic write rd/#\n');
  await withAuthBroker({ aclFile: acl }, async (port, running) => {
    const writer = await connect(port, { protocolVersion: 5, clientId: 'acl-writer', username: 'writer' });
    await writer.publishAsync('rd/secret', 'retained secret', { qos: 1, retain: true });
    await writer.publishAsync('rd/open', 'retained open', { qos: 1, retain: true });
    const reader = await connect(port, { protocolVersion: 5, clientId: 'acl-reader', username: 'reader' });
    const got = collect(reader);
    const [granted] = await reader.subscribeAsync('rd/#', { qos: 1 });
    assert.equal(granted?.qos, 1, 'rd/# is covered by the read rule');
    for (const topic of ['rd/secret', 'rd/a', 'rd/secret', 'rd/b']) await writer.publishAsync(topic, `live ${topic}`, { qos: 1 });
    await got.waitFor(3);
    // rd/b was published last: anything refused before it would have come first.
    assert.deepEqual(got.messages.map((m) => m.payload.toString()), ['retained open', 'live rd/a', 'live rd/b']);
    assert.equal(running.broker.stats.messagesDroppedNotAuthorized, 3, 'the retained and the two live rd/secret');

    fs.writeFileSync(acl, 'user reader\ntopic read rd/#\ntopic deny rd/a\nuser writer\ntopic write rd/#\n');
    running.reload();
    await writer.publishAsync('rd/a', 'after reload', { qos: 1 });
    await writer.publishAsync('rd/secret', 'readable now', { qos: 1 });
    await got.waitFor(4);
    assert.deepEqual(got.messages.slice(3).map((m) => m.payload.toString()), ['readable now'], 'the reloaded rules apply to the existing subscription');
    writer.end(true);
    reader.end(true);
  });
});

test('reload: a changed password file takes effect; a broken one keeps the previous rules', async () => {
  const file = path.join(tempDir(), 'passwords');
  passwd(file, 'carol', '--password', 'first-pw');
  await withAuthBroker({ passwordFile: file }, async (port, running) => {
    passwd(file, 'carol', '--password', 'second-pw');
    assert.equal(await connackOf(port, 5, { clientId: 'c', username: 'carol', password: Buffer.from('second-pw') }), 0x86, 'not before the reload');
    assert.equal(running.reload(), undefined);
    assert.equal(await connackOf(port, 5, { clientId: 'c', username: 'carol', password: Buffer.from('second-pw') }), 0);
    fs.writeFileSync(file, 'carol:not-a-hash\n');
    assert.match(String(running.reload()?.message), /line 1/);
    assert.equal(await connackOf(port, 5, { clientId: 'c', username: 'carol', password: Buffer.from('second-pw') }), 0, 'the previous rules stay');
  });
});

test('a thousand wrong passwords from one address: the first ones checked and refused (0x86), the rest refused unchecked (0x9F), the broker keeps serving, no secret logged', async () => {
  const file = path.join(tempDir(), 'passwords');
  passwd(file, 'dave', '--password', 'dave-right-pw');
  const lines: string[] = [];
  await withAuthBroker(
    { passwordFile: file, authFailuresPerMinute: 20 },
    async (port) => {
      // A client logged in before the flood, to show the broker still serves while it lasts.
      const { client: ok } = await RawClient.connect(port, 5, { clientId: 'steady', username: 'dave', password: Buffer.from('dave-right-pw') });
      await ok.subscribe('steady/#', 1);
      const codes = new Map<number, number>();
      for (let i = 0; i < 1000; i++) {
        const code = await connackOf(port, 5, { clientId: `guess-${i}`, username: 'dave', password: Buffer.from(`guess-${i}-pw`) });
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
      assert.deepEqual([...codes].sort(), [[0x86, 20], [0x9f, 980]]);
      ok.publish('steady/t', 'still here', 1, 1);
      const got = await ok.take('publish');
      assert.equal(got.payload.toString(), 'still here');
      await ok.destroy();
    },
    recordingLogger(lines),
  );
  const log = lines.join('\n');
  assert.equal(lines.filter((l) => l.includes('too many failed logins')).length, 1, 'the throttle is logged once');
  assert.ok(!/guess-\d+-pw|dave-right-pw/.test(log), 'a password reached the log');
});
