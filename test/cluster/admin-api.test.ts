// The admin API in cluster mode: any node answers for the whole cluster. Three real node
// processes; clients on two of them; the third lists both, shows a session held elsewhere and
// kicks a client connected to another node.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { IDisconnectPacket } from 'mqtt-packet';
import { waitUntil } from '../guarantees/wait';
import { connect } from '../helpers';
import { TestCluster } from './nodes';

const TOKEN = 'cluster-admin-token';
const cluster = new TestCluster(['--node-lease-ms', '2000', '--admin-token', TOKEN]);

after(async () => {
  await cluster.stop();
});

async function api(adminPort: number, method: string, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${adminPort}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const ids = (body: Record<string, unknown>) => (Array.isArray(body.clients) ? (body.clients as { clientId: string }[]).map((c) => c.clientId) : []);

test('cluster admin API: a node lists, shows and kicks clients connected to other nodes', async () => {
  const [a, b, c] = await cluster.startAll('adm-a', 'adm-b', 'adm-c');
  const onA = await connect(a.port, { protocolVersion: 5, clientId: 'adm-on-a' });
  const onB = await connect(b.port, { protocolVersion: 5, clientId: 'adm-on-b', clean: false, properties: { sessionExpiryInterval: 300 } });
  await onB.subscribeAsync('adm/+/in', { qos: 1 });
  try {
    // Each node learns the others' admin addresses from their heartbeats.
    let listed: Record<string, unknown> = {};
    for (let i = 0; i < 100 && ids(listed).length < 2; i++) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 200));
      listed = (await api(c.adminPort, 'GET', '/api/v1/clients?prefix=adm-on-')).body;
    }
    assert.deepEqual(ids(listed), ['adm-on-a', 'adm-on-b']);
    const nodeOf = new Map((listed.clients as { clientId: string; node: string }[]).map((x) => [x.clientId, x.node.split('/')[0]]));
    assert.deepEqual([...nodeOf], [['adm-on-a', 'adm-a'], ['adm-on-b', 'adm-b']]);

    // Paging across nodes: one at a time, in client-id order.
    const first = await api(c.adminPort, 'GET', '/api/v1/clients?prefix=adm-on-&limit=1');
    assert.deepEqual(ids(first.body), ['adm-on-a']);
    assert.equal(first.body.next, 'adm-on-a');
    const second = await api(c.adminPort, 'GET', '/api/v1/clients?prefix=adm-on-&limit=1&after=adm-on-a');
    assert.deepEqual(ids(second.body), ['adm-on-b']);
    assert.equal(second.body.next, null);

    const session = await api(c.adminPort, 'GET', '/api/v1/clients/adm-on-b');
    assert.equal(session.status, 200);
    assert.equal(String(session.body.node).split('/')[0], 'adm-b');
    assert.deepEqual((session.body.subscriptions as { filter: string }[]).map((s) => s.filter), ['adm/+/in']);

    const info = await api(a.adminPort, 'GET', '/api/v1/info');
    assert.deepEqual((info.body.nodes as { node: string }[]).map((n) => n.node.split('/')[0]).sort(), ['adm-a', 'adm-b', 'adm-c']);

    let reason: number | undefined;
    onB.on('disconnect', (p: IDisconnectPacket) => (reason = p.reasonCode));
    const kicked = await api(c.adminPort, 'DELETE', '/api/v1/clients/adm-on-b');
    assert.equal(kicked.status, 200);
    assert.equal(String(kicked.body.node).split('/')[0], 'adm-b', 'the node that holds the client did the kick');
    await waitUntil(() => reason !== undefined, 'the kicked client to get DISCONNECT');
    assert.equal(reason, 0x98);

    const missing = await api(c.adminPort, 'DELETE', '/api/v1/clients/adm-nobody');
    assert.equal(missing.status, 404);
    const notSeen = await api(c.adminPort, 'GET', '/api/v1/clients/adm-nobody');
    assert.equal(notSeen.status, 404);
  } finally {
    onA.end(true);
    onB.end(true);
  }
});
