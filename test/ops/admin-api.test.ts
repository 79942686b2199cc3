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

test('admin API: stats count messages, drops by reason and store commits; subscriptions listed by filter', async () => {
  const b = await startTestBroker({ adminPort: await freePort(), adminToken: TOKEN, maxQueuedMessages: 1 });
  // An offline persistent session: its queue is stored (store commits) and holds one message (queue-full drops).
  const keep = await connect(b.port, { clientId: 'keep', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 } });
  await keep.subscribeAsync('s/#', { qos: 1 });
  await endClient(keep);
  const live = await connect(b.port, { clientId: 'live', protocolVersion: 5 });
  try {
    await live.subscribeAsync('s/#', { qos: 1 });
    await live.subscribeAsync('t/+', { qos: 0 });
    const seen = collect(live);
    assert.equal((await api(b.adminPort, 'GET', '/api/v1/stats', undefined, null)).status, 401);
    const before = (await api(b.adminPort, 'GET', '/api/v1/stats')).json;
    for (let i = 0; i < 3; i++) await live.publishAsync(`s/${i}`, `m${i}`, { qos: 1 });
    await seen.waitFor(3);
    const after = (await api(b.adminPort, 'GET', '/api/v1/stats')).json;
    const delta = (read: (s: Record<string, unknown>) => unknown): number => Number(read(after)) - Number(read(before));
    assert.deepEqual([after.connections, after.sessions, after.subscriptions, after.retained], [1, 2, 3, 0]);
    assert.equal(delta((s) => s.messagesReceived), 3);
    assert.equal(delta((s) => s.messagesSent), 3, 'to live; keep is offline');
    assert.equal(delta((s) => (s.dropped as Record<string, number>).queueFull), 2, 'keep holds 1 of 3 (drop-oldest)');
    assert.equal(delta((s) => (s.dropped as Record<string, number>).expired), 0);
    const store = after.store as { kind: string; commits: number; commitMs: number; retries: number; publishFailures: number };
    assert.equal(store.kind, 'lmdb');
    assert.ok(delta((s) => (s.store as typeof store).commits) >= 1, 'keep\'s queue was stored');
    assert.ok(store.commitMs >= 0 && Number.isFinite(store.commitMs));
    assert.deepEqual([store.retries, store.publishFailures], [0, 0]);
    assert.ok(Number(after.sampledAt) >= Number(before.sampledAt));
    const metrics = await (await fetch(`http://127.0.0.1:${b.adminPort}/metrics`)).text();
    assert.match(metrics, /^iotbridge_store_commits_total \d+$/m);
    assert.match(metrics, /^iotbridge_store_commit_seconds_total [\d.e-]+$/m);

    const subs = await api(b.adminPort, 'GET', '/api/v1/subscriptions');
    assert.deepEqual(subs.json, {
      subscriptions: [
        { filter: 's/#', subscribers: 2, clients: ['keep', 'live'] },
        { filter: 't/+', subscribers: 1, clients: ['live'] },
      ],
      next: null,
    });
    const byPrefix = await api(b.adminPort, 'GET', '/api/v1/subscriptions?prefix=t/');
    assert.deepEqual((byPrefix.json.subscriptions as { filter: string }[]).map((s) => s.filter), ['t/+']);
    const first = await api(b.adminPort, 'GET', '/api/v1/subscriptions?limit=1');
    assert.equal(first.json.next, 's/#');
  } finally {
    await endClient(live, true);
    await b.stop();
  }
});
