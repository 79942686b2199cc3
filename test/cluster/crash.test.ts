// The crash test of cluster mode: publishers and persistent subscribers on different nodes,
// sustained QoS 1 and QoS 2; one node is killed with kill -9 mid-stream and its clients reconnect
// to the others. Reports sent / acked / delivered / lost / duplicated / out of order.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type MqttClient } from 'mqtt';
import { endClient, sleep } from '../helpers';
import { TestCluster, type ClusterNode } from './nodes';

const LEASE_MS = 2000;
const PER_PUBLISHER = 400;
const cluster = new TestCluster(['--node-lease-ms', String(LEASE_MS)]);
let a: ClusterNode;
let b: ClusterNode;
let c: ClusterNode;

before(async () => {
  [a, b, c] = await cluster.startAll('kill-a', 'kill-b', 'kill-c');
});

after(async () => {
  await cluster.stop();
});

/** An mqtt.js client on a persistent session that reconnects to the next node when its node dies. */
function client(clientId: string, ports: number[], protocolVersion: 4 | 5): MqttClient {
  return mqtt.connect({
    servers: ports.map((port) => ({ host: '127.0.0.1', port })),
    clientId,
    clean: false,
    protocolVersion,
    properties: protocolVersion === 5 ? { sessionExpiryInterval: 600 } : undefined,
    reconnectPeriod: 300,
    connectTimeout: 5000,
    resubscribe: false,
  });
}

interface Tally {
  sent: number;
  acked: Set<number>;
  firstSeen: number[];
  duplicates: number;
  outOfOrder: number;
  trace: string[];
}

test('cluster crash: kill -9 of a node mid-stream at QoS 1 and 2: nothing acknowledged is lost, no QoS 2 duplicate, order per publisher', async () => {
  const tallies = new Map<string, Tally>();
  const subs: MqttClient[] = [];
  const pubs: MqttClient[] = [];
  try {
    // Subscribers live on the node that will die, and on a survivor.
    for (const [name, ports, qos] of [
      ['sub-q1', [a.port, b.port], 1],
      ['sub-q2', [a.port, c.port], 2],
    ] as const) {
      const sub = client(`crash-${name}`, [...ports], 5);
      subs.push(sub);
      await new Promise<void>((resolve) => sub.once('connect', () => resolve()));
      await sub.subscribeAsync(`crash/q${qos}/#`, { qos });
      sub.on('message', (topic, payload, packet) => {
        const [, , publisher] = topic.split('/');
        const tally = tallies.get(`${publisher}@q${packet.qos}`);
        if (!tally) return;
        const seq = Number(payload.toString());
        tally.trace.push(`${seq}${packet.dup ? 'd' : ''}`);
        if (tally.firstSeen.includes(seq)) {
          tally.duplicates++;
          return;
        }
        if (tally.firstSeen.length > 0 && seq < tally.firstSeen[tally.firstSeen.length - 1]) tally.outOfOrder++;
        tally.firstSeen.push(seq);
      });
    }
    // Publishers on every node; the one on A moves to C when A dies.
    const publishers: { name: string; ports: number[]; qos: 1 | 2 }[] = [
      { name: 'pa1', ports: [a.port, c.port], qos: 1 },
      { name: 'pb1', ports: [b.port], qos: 1 },
      { name: 'pa2', ports: [a.port, b.port], qos: 2 },
      { name: 'pc2', ports: [c.port], qos: 2 },
    ];
    const runs = publishers.map(async ({ name, ports, qos }) => {
      const tally: Tally = { sent: 0, acked: new Set(), firstSeen: [], duplicates: 0, outOfOrder: 0, trace: [] };
      tallies.set(`${name}@q${qos}`, tally);
      const pub = client(`crash-${name}`, ports, 4);
      pubs.push(pub);
      await new Promise<void>((resolve) => pub.once('connect', () => resolve()));
      const pending: Promise<void>[] = [];
      for (let seq = 0; seq < PER_PUBLISHER; seq++) {
        tally.sent++;
        pending.push(
          pub.publishAsync(`crash/q${qos}/${name}`, String(seq), { qos }).then(
            () => void tally.acked.add(seq),
            () => undefined, // not acknowledged: the publisher may not count on it
          ),
        );
        if (seq % 20 === 19) await sleep(15);
      }
      const deadline = Date.now() + 60_000;
      while (tally.acked.size < PER_PUBLISHER && Date.now() < deadline) await sleep(100);
      await Promise.race([Promise.all(pending), sleep(1000)]);
    });
    await sleep(400);
    await cluster.kill9('kill-a');
    await Promise.all(runs);

    // Every acknowledged message must arrive: wait (bounded) for the stragglers.
    const deadline = Date.now() + 60_000;
    const missing = () => [...tallies.values()].reduce((n, t) => n + [...t.acked].filter((s) => !t.firstSeen.includes(s)).length, 0);
    while (missing() > 0 && Date.now() < deadline) await sleep(200);

    const rows = [...tallies].map(([key, t]) => {
      const lost = [...t.acked].filter((s) => !t.firstSeen.includes(s)).length;
      return { key, sent: t.sent, acked: t.acked.size, delivered: t.firstSeen.length, lost, duplicated: t.duplicates, outOfOrder: t.outOfOrder };
    });
    console.log(`crash test (kill -9 of one of 3 nodes, lease ${LEASE_MS} ms):`);
    console.table(rows);
    if (process.env.CRASH_TRACE) for (const [key, t] of tallies) console.log(key, t.trace.join(' '));
    for (const row of rows) {
      assert.equal(row.lost, 0, `${row.key}: acknowledged but never delivered\n${cluster.logs()}`);
      assert.equal(row.outOfOrder, 0, `${row.key}: out of order`);
      if (row.key.endsWith('@q2')) assert.equal(row.duplicated, 0, `${row.key}: QoS 2 duplicated`);
      assert.ok(row.acked >= PER_PUBLISHER * 0.9, `${row.key}: only ${row.acked} of ${row.sent} acknowledged\n${cluster.logs()}`);
    }
  } finally {
    await Promise.all([...subs, ...pubs].map((cl) => endClient(cl, true)));
  }
});
