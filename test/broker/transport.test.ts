import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { collect, connect, endClient, startTestBroker, tempDir } from '../helpers';

function selfSignedCert(): { cert: string; key: string; ca: Buffer } {
  const dir = tempDir('iotb-tls-');
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  return { cert, key, ca: fs.readFileSync(cert) };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

function get(port: number, url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: url }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

test('MQTT over TLS, MQTT over WebSocket and TCP reach the same broker', async () => {
  const tls = selfSignedCert();
  // Port 0 means "off" for TLS and WebSocket, so ask for free ones.
  const b2 = await startTestBroker({ tlsPort: await freePort(), tlsCertFile: tls.cert, tlsKeyFile: tls.key, wsPort: await freePort() });
  try {
    const sub = await connect(b2.port, { clientId: 'tcp-sub' });
    const got = collect(sub);
    await sub.subscribeAsync('t/#', { qos: 1 });
    const overTls = await connect(b2.tlsPort, { protocol: 'mqtts', ca: tls.ca, servername: 'localhost', clientId: 'tls-pub' });
    await overTls.publishAsync('t/tls', 'via tls', { qos: 1 });
    const overWs = await connect(b2.wsPort, { protocol: 'ws', path: '/mqtt', clientId: 'ws-pub' });
    await overWs.publishAsync('t/ws', 'via ws', { qos: 1 });
    const messages = await got.waitFor(2);
    assert.deepEqual(messages.map((m) => `${m.topic}=${m.payload}`).sort(), ['t/tls=via tls', 't/ws=via ws']);
    await Promise.all([endClient(sub), endClient(overTls), endClient(overWs)]);
  } finally {
    await b2.stop();
  }
});

test('admin port serves Prometheus metrics and a health check', async () => {
  const b = await startTestBroker({ adminPort: await freePort() });
  try {
    const c = await connect(b.port, { clientId: 'metrics' });
    await c.publishAsync('m/x', 'y', { qos: 1 });
    const metrics = await get(b.adminPort, '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /iotbridge_connections 1/);
    assert.match(metrics.body, /iotbridge_messages_received_total 1/);
    assert.match(metrics.body, /iotbridge_messages_dropped_total\{reason="queue_full"\} 0/);
    const health = await get(b.adminPort, '/healthz');
    assert.deepEqual(JSON.parse(health.body), { status: 'ok', store: process.env.IOTB_TEST_STORE === 'machine' ? 'lmdb-shared' : 'lmdb' });
    await endClient(c);
  } finally {
    await b.stop();
  }
});
