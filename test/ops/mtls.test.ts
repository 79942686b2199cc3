// Mutual TLS: the TLS listener requires a client certificate from the configured CA, and with
// tlsCertAsUsername its CN is the user name the ACL sees. Real certificates (openssl), real
// clients (mqtt.js and mosquitto_pub), a reload of the server certificate without a restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { startBroker } from '../../src/index';
import { defaultConfig } from '../../src/ops/config';
import { silentLogger } from '../../src/broker/options';
import { firstSanName } from '../../src/transport/listeners';
import { freePort, runClient, skipWithout, tempDir } from '../helpers';

const mosquittoPub = skipWithout(['mosquitto_pub']) === false;

const openssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });

/** A CA, and a certificate signed by it for `cn` (with SANs for the server). */
function makeCa(dir: string, name: string): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`);
  return { cert, key };
}

const SERVER_EXT = 'subjectAltName=IP:127.0.0.1,DNS:localhost\n';
const CLIENT_EXT = 'extendedKeyUsage=clientAuth\n';

function issue(dir: string, ca: { cert: string; key: string }, name: string, cn: string, extensions: string): { cert: string; key: string } {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, extensions);
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`);
  openssl('x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext);
  return { cert, key };
}

/** A client certificate from `ca` that expired yesterday (`openssl x509 -req` cannot back-date: `openssl ca` can). */
function issueExpired(dir: string, ca: { cert: string; key: string }, name: string, cn: string): { cert: string; key: string } {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.pem`);
  const conf = path.join(dir, `${name}.cnf`);
  fs.writeFileSync(path.join(dir, `${name}.db`), '');
  fs.writeFileSync(path.join(dir, `${name}.srl`), '01\n');
  fs.writeFileSync(
    conf,
    `[ca]\ndefault_ca = c\n[c]\ndatabase = ${dir}/${name}.db\nnew_certs_dir = ${dir}\nserial = ${dir}/${name}.srl\ndefault_md = sha256\npolicy = p\nx509_extensions = e\n[p]\ncommonName = supplied\n[e]\nextendedKeyUsage = clientAuth\n`,
  );
  const asn1Time = (ms: number) => new Date(ms).toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
  const day = 86_400_000;
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`);
  openssl('ca', '-batch', '-config', conf, '-cert', ca.cert, '-keyfile', ca.key, '-in', csr, '-out', cert, '-notext', '-startdate', asn1Time(Date.now() - 2 * day), '-enddate', asn1Time(Date.now() - day));
  return { cert, key };
}

const runPub = async (args: string[]): Promise<number | null> => (await runClient('mosquitto_pub', args)).status;

/**
 * Sends a CONNECT over TLS with the client certificate: 'connack' if the broker answers, 'closed' if
 * the connection ends first (a refused certificate: with TLS 1.3 the client learns of it only after
 * its handshake, so mqtt.js does not report it as a connect error).
 */
function tlsOutcome(port: number, ca: string, client: { cert: string; key: string }): Promise<'connack' | 'closed'> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(ca), cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key) });
    const timer = setTimeout(() => reject(new Error('neither a CONNACK nor a close within 5 s')), 5000);
    const end = (outcome: 'connack' | 'closed') => {
      clearTimeout(timer);
      s.destroy();
      resolve(outcome);
    };
    s.on('secureConnect', () => s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'tls-probe', keepalive: 0 })));
    s.on('data', (d: Buffer) => end(d[0] === 0x20 ? 'connack' : 'closed'));
    s.on('error', () => end('closed'));
    s.on('close', () => end('closed'));
  });
}

function fingerprint(port: number, ca: string, client: { cert: string; key: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(ca), cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key) }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.destroy();
    });
    s.on('error', reject);
  });
}

test('mutual TLS: a certificate from the CA gets in with its CN as user name (ACL applies); none, a foreign or an expired one does not; the server certificate reloads', async () => {
  const dir = tempDir('iotb-mtls-');
  const ca = makeCa(dir, 'device-ca');
  const foreignCa = makeCa(dir, 'other-ca');
  const server = issue(dir, ca, 'server', 'localhost', SERVER_EXT);
  const device = issue(dir, ca, 'device', 'device-42', CLIENT_EXT);
  const stranger = issue(dir, foreignCa, 'stranger', 'device-42', CLIENT_EXT);
  const expired = issueExpired(dir, ca, 'expired', 'device-42');
  const acl = path.join(dir, 'acl');
  fs.writeFileSync(acl, 'user device-42\ntopic readwrite dev/42/#\n');
  const tlsPort = await freePort();
  const running = await startBroker(
    { ...defaultConfig, host: '127.0.0.1', port: 0, dataDir: tempDir(), durability: 'relaxed', logLevel: 'silent', tlsPort, tlsCertFile: server.cert, tlsKeyFile: server.key, tlsCaFile: ca.cert, tlsCertAsUsername: true, aclFile: acl },
    silentLogger,
  );
  const tlsClient = { protocol: 'mqtts' as const, host: '127.0.0.1', port: tlsPort, ca: fs.readFileSync(ca.cert), protocolVersion: 5 as const, reconnectPeriod: 0 };
  const sub = await mqtt.connectAsync({ ...tlsClient, clientId: 'sub-42', cert: fs.readFileSync(device.cert), key: fs.readFileSync(device.key) });
  try {
    const granted = await sub.subscribeAsync('dev/42/#', { qos: 1 });
    assert.deepEqual(granted.map((g) => g.qos), [1], 'the ACL saw the certificate CN as user name');
    // mqtt.js rejects a SUBACK with a failure code; the packet says which.
    await assert.rejects(sub.subscribeAsync('other/#', { qos: 1 }), (e: Error & { packet?: { granted?: number[] } }) => e.packet?.granted?.[0] === 0x87);
    const got = new Promise<string>((resolve) => sub.once('message', (_t, payload) => resolve(payload.toString())));

    if (mosquittoPub) {
      const base = ['-h', '127.0.0.1', '-p', String(tlsPort), '--cafile', ca.cert, '-q', '1'];
      assert.equal(await runPub([...base, '--cert', device.cert, '--key', device.key, '-t', 'dev/42/t', '-m', 'from mosquitto_pub']), 0);
      assert.equal(await got, 'from mosquitto_pub');
      assert.notEqual(await runPub([...base, '-t', 'dev/42/t', '-m', 'no certificate']), 0, 'no client certificate got in');
      assert.notEqual(await runPub([...base, '--cert', stranger.cert, '--key', stranger.key, '-t', 'dev/42/t', '-m', 'foreign CA']), 0, 'a certificate from another CA got in');
      assert.notEqual(await runPub([...base, '--cert', expired.cert, '--key', expired.key, '-t', 'dev/42/t', '-m', 'expired']), 0, 'an expired certificate got in');
    } else {
      const pub = await mqtt.connectAsync({ ...tlsClient, clientId: 'pub-42', cert: fs.readFileSync(device.cert), key: fs.readFileSync(device.key) });
      await pub.publishAsync('dev/42/t', 'from mqtt.js', { qos: 1 });
      assert.equal(await got, 'from mqtt.js');
      await pub.endAsync();
    }
    await assert.rejects(mqtt.connectAsync({ ...tlsClient, clientId: 'nocert' }), 'no client certificate got in (mqtt.js)');
    assert.equal(await tlsOutcome(tlsPort, ca.cert, expired), 'closed', 'an expired certificate got in');
    assert.equal(await tlsOutcome(tlsPort, ca.cert, device), 'connack', 'the same handshake with a valid certificate');

    // Reload: a new server certificate is served to new connections without a restart.
    const before = await fingerprint(tlsPort, ca.cert, device);
    const renewed = issue(dir, ca, 'server2', 'localhost', SERVER_EXT);
    fs.copyFileSync(renewed.cert, server.cert);
    fs.copyFileSync(renewed.key, server.key);
    assert.equal(await fingerprint(tlsPort, ca.cert, device), before, 'changed before the reload');
    assert.equal(running.reload(), undefined);
    assert.notEqual(await fingerprint(tlsPort, ca.cert, device), before, 'the reload did not take the new certificate');
    assert.ok(sub.connected, 'an open connection survives the reload');
  } finally {
    await sub.endAsync();
    await running.stop();
  }
});

test('tlsCertUsernameField san: the first DNS, email or URI SAN is the user name (an IP SAN before it is skipped), not the CN', async () => {
  const dir = tempDir('iotb-mtls-san-');
  const ca = makeCa(dir, 'device-ca');
  const server = issue(dir, ca, 'server', 'localhost', SERVER_EXT);
  const device = issue(dir, ca, 'device', 'not-the-user', `${CLIENT_EXT}subjectAltName=IP:10.0.0.7,DNS:device-43.example,email:ops@example.com\n`);
  const acl = path.join(dir, 'acl');
  fs.writeFileSync(acl, 'user device-43.example\ntopic readwrite dev/43/#\nuser not-the-user\ntopic readwrite cn/#\n');
  const tlsPort = await freePort();
  const running = await startBroker(
    { ...defaultConfig, host: '127.0.0.1', port: 0, dataDir: tempDir(), durability: 'relaxed', logLevel: 'silent', tlsPort, tlsCertFile: server.cert, tlsKeyFile: server.key, tlsCaFile: ca.cert, tlsCertAsUsername: true, tlsCertUsernameField: 'san', aclFile: acl },
    silentLogger,
  );
  const client = await mqtt.connectAsync({ protocol: 'mqtts', host: '127.0.0.1', port: tlsPort, ca: fs.readFileSync(ca.cert), cert: fs.readFileSync(device.cert), key: fs.readFileSync(device.key), protocolVersion: 5, reconnectPeriod: 0, clientId: 'san-43', username: 'not-the-user' });
  try {
    assert.deepEqual((await client.subscribeAsync('dev/43/#', { qos: 1 })).map((g) => g.qos), [1], 'the ACL saw the DNS SAN as user name');
    await assert.rejects(client.subscribeAsync('cn/#', { qos: 1 }), (e: Error & { packet?: { granted?: number[] } }) => e.packet?.granted?.[0] === 0x87, 'the CN (or the CONNECT user name) counted');
  } finally {
    await client.endAsync();
    await running.stop();
  }
});

test('firstSanName reads Node\'s subjectaltname text: kinds in order, IP addresses skipped, quoted values whole', () => {
  assert.equal(firstSanName('IP Address:10.0.0.7, DNS:device-43.example, email:ops@example.com'), 'device-43.example');
  assert.equal(firstSanName('DirName:"CN=x, DNS:evil", URI:spiffe://iot/device/7'), 'spiffe://iot/device/7');
  // What Node 20 writes for a URI SAN with a comma (openssl's `URI.1=spiffe://x/a,b`):
  assert.equal(firstSanName('URI:"spiffe://x/a\\u002cb", DNS:ok.example'), 'spiffe://x/a,b');
  assert.equal(firstSanName('IP Address:10.0.0.7'), undefined);
  assert.equal(firstSanName(''), undefined);
});
