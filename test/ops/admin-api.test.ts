// The admin REST API over real HTTP, against a broker with real mqtt.js clients: the token, client
// listing with prefix and paging, one session's view, kick (MQTT 5 DISCONNECT 0x98), discarding a
// persistent session, retained messages (list, get, delete without publishing), publish, bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IDisconnectPacket } from 'mqtt';
import { collect, connect, endClient, freePort, startTestBroker } from '../helpers';

const TOKEN = 'test-admin-token-0123456789';

async function api(port: number, method: string, path: string, body?: unknown, token: string | null = TOKEN): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

test('admin API: off without a token; 401 without or with a wrong bearer token', async () => {
  const off = await startTestBroker({ adminPort: await freePort() });
  try {
    const r = await api(off.adminPort, 'GET', '/api/v1/info');
    assert.equal(r.status, 404);
    assert.match(String(r.json.error), /adminToken/);
  } finally {
    await off.stop();
  }
  const b = await startTestBroker({ adminPort: await freePort(), adminToken: TOKEN });
  try {
    assert.equal((await api(b.adminPort, 'GET', '/api/v1/info', undefined, null)).status, 401);
    assert.equal((await api(b.adminPort, 'GET', '/api/v1/info', undefined, `${TOKEN}x`)).status, 401);
    const info = await api(b.adminPort, 'GET', '/api/v1/info');
    assert.equal(info.status, 200);
    assert.equal(info.json.store, 'lmdb');
    assert.match(String(info.json.version), /^\d+\.\d+\.\d+/);
  } finally {
    await b.stop();
  }
});

test('admin API: clients by prefix and page, one session, kick with 0x98, discard a persistent session', async () => {
  const b = await startTestBroker({ adminPort: await freePort(), adminToken: TOKEN });
  const clients = [
    await connect(b.port, { clientId: 'dev-a', protocolVersion: 5, username: 'alice' }),
    await connect(b.port, { clientId: 'dev-b', protocolVersion: 5 }),
    await connect(b.port, { clientId: 'other', protocolVersion: 4 }),
  ];
  try {
    await clients[0]!.subscribeAsync('a/#', { qos: 1 });
    const list = await api(b.adminPort, 'GET', '/api/v1/clients?prefix=dev-');
    assert.deepEqual((list.json.clients as { clientId: string }[]).map((c) => c.clientId), ['dev-a', 'dev-b']);
    const page1 = await api(b.adminPort, 'GET', '/api/v1/clients?prefix=dev-&limit=1');
    assert.deepEqual([(page1.json.clients as { clientId: string }[]).map((c) => c.clientId), page1.json.next], [['dev-a'], 'dev-a']);
    const page2 = await api(b.adminPort, 'GET', '/api/v1/clients?prefix=dev-&limit=1&after=dev-a');
    assert.deepEqual([(page2.json.clients as { clientId: string }[]).map((c) => c.clientId), page2.json.next], [['dev-b'], null]);
    assert.equal((await api(b.adminPort, 'GET', '/api/v1/clients?limit=0')).status, 400);

    const one = await api(b.adminPort, 'GET', '/api/v1/clients/dev-a');
    assert.equal(one.json.username, 'alice');
    assert.equal(one.json.connected, true);
    assert.deepEqual((one.json.subscriptions as { filter: string }[]).map((s) => s.filter), ['a/#']);
    assert.equal((await api(b.adminPort, 'GET', '/api/v1/clients/nobody')).status, 404);

    const disconnected = new Promise<IDisconnectPacket>((resolve) => clients[1]!.once('disconnect', resolve));
    assert.equal((await api(b.adminPort, 'DELETE', '/api/v1/clients/dev-b')).status, 200);
    assert.equal((await disconnected).reasonCode, 0x98);
    assert.equal((await api(b.adminPort, 'DELETE', '/api/v1/clients/dev-b')).status, 404, 'no longer connected');

    // A persistent session outlives its connection until discarded.
    const keep = await connect(b.port, { clientId: 'keep', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 } });
    await keep.subscribeAsync('k/#', { qos: 1 });
    await endClient(keep);
    const offline = await api(b.adminPort, 'GET', '/api/v1/clients/keep');
    assert.deepEqual([offline.json.connected, offline.json.persistent], [false, true]);
    assert.equal((await api(b.adminPort, 'DELETE', '/api/v1/sessions/keep')).status, 200);
    assert.equal((await api(b.adminPort, 'GET', '/api/v1/clients/keep')).status, 404);
    let sessionPresent: boolean | undefined;
    const back = await connect(b.port, { clientId: 'keep', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 } }, (c) =>
      c.once('connect', (connack) => (sessionPresent = connack.sessionPresent)),
    );
    assert.equal(sessionPresent, false, 'the discarded session came back');
    clients.push(back);
  } finally {
    for (const c of clients) await endClient(c, true);
    await b.stop();
  }
});

test('admin API: retained messages listed, read and deleted without publishing; publish reaches subscribers; bad input is 400/413', async () => {
  const b = await startTestBroker({ adminPort: await freePort(), adminToken: TOKEN });
  const pub = await connect(b.port, { clientId: 'pub', protocolVersion: 5 });
  try {
    await pub.publishAsync('r/1', 'one', { qos: 1, retain: true });
    await pub.publishAsync('r/2', Buffer.from([0xff, 0x00]), { qos: 1, retain: true });
    const listed = await api(b.adminPort, 'GET', '/api/v1/retained?prefix=r/');
    assert.deepEqual((listed.json.retained as { topic: string }[]).map((m) => m.topic), ['r/1', 'r/2']);
    const two = await api(b.adminPort, 'GET', `/api/v1/retained/${encodeURIComponent('r/2')}`);
    assert.deepEqual([two.json.payload, two.json.encoding], [Buffer.from([0xff, 0x00]).toString('base64'), 'base64']);

    const watcher = await connect(b.port, { clientId: 'watcher', protocolVersion: 5 });
    const seen = collect(watcher);
    await watcher.subscribeAsync('p/#', { qos: 1 });
    assert.equal((await api(b.adminPort, 'DELETE', '/api/v1/retained/r/1')).status, 200);
    assert.equal((await api(b.adminPort, 'GET', '/api/v1/retained/r/1')).status, 404);

    const published = await api(b.adminPort, 'POST', '/api/v1/publish', { topic: 'p/x', payload: 'from the API', qos: 1 });
    assert.equal(published.status, 200);
    const [first] = await seen.waitFor(1);
    assert.equal(first!.payload.toString(), 'from the API');

    // The deleted retained message is gone for a new subscriber, and nothing was published for it:
    // the API's publish (after the delete) is the first and only thing the watcher saw.
    const late = await connect(b.port, { clientId: 'late', protocolVersion: 5 });
    const lateSeen = collect(late);
    await late.subscribeAsync('r/#', { qos: 1 });
    await api(b.adminPort, 'POST', '/api/v1/publish', { topic: 'r/marker', payload: 'marker', qos: 1 });
    const lateFirst = await lateSeen.waitFor(2);
    assert.deepEqual(lateFirst.map((m) => m.topic).sort(), ['r/2', 'r/marker']);
    assert.deepEqual(seen.messages.map((m) => m.topic), ['p/x']);

    assert.equal((await api(b.adminPort, 'POST', '/api/v1/publish', { topic: 'a/#', payload: 'x' })).status, 400);
    assert.equal((await api(b.adminPort, 'POST', '/api/v1/publish', { topic: 'a', qos: 3 })).status, 400);
    assert.equal((await api(b.adminPort, 'POST', '/api/v1/publish', 'not json')).status, 400);
    assert.equal((await api(b.adminPort, 'POST', '/api/v1/publish', { topic: 'a', payload: 'x'.repeat(70_000) })).status, 413);
    assert.equal((await api(b.adminPort, 'GET', '/api/v2/info')).status, 404);
    for (const c of [watcher, late]) await endClient(c, true);
  } finally {
    await endClient(pub, true);
    await b.stop();
  }
});
