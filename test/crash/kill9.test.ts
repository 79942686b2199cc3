// Crash test: the broker CLI (LMDB, durability strict) is killed with a real SIGKILL twice while a
// publisher streams numbered QoS 1 and QoS 2 messages to a persistent subscriber that is offline
// and to one that is online. After each restart on the same data dir the publisher resumes its
// session (re-sends unacked PUBLISHes with DUP=1 and the same id, re-sends PUBREL after PUBREC).
// Asserts: every message the broker acknowledged (PUBACK / PUBREC) reaches both subscribers, and
// no QoS 2 message is delivered twice (G1, G2, G3, G4, G7 across kill -9).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Packet, ProtocolVersion } from '../../src/protocol/packets';
import { BrokerOnDisk } from '../guarantees/broker-process';
import { RawClient } from '../mqtt-helpers';
import { waitUntil } from '../guarantees/wait';

const N = 600; // messages; odd numbers QoS 1 on crash/q1, even numbers QoS 2 on crash/q2
const WINDOW = 20; // PUBLISHes in flight from the publisher
const CRASH_AT = [N / 3, (2 * N) / 3]; // kill -9 once this many messages are acknowledged

const qosOf = (i: number): 1 | 2 => (i % 2 === 1 ? 1 : 2);
const topicOf = (i: number) => (qosOf(i) === 1 ? 'crash/q1' : 'crash/q2');

/** The publisher's side of its session; it outlives connections, as a client's must. */
class Publisher {
  readonly acked = new Set<number>(); // PUBACK or PUBREC received: the broker took responsibility
  readonly completed = new Set<number>(); // PUBACK or PUBCOMP received
  readonly sent = new Set<number>();
  resent = 0;
  client: RawClient | null = null;

  async connect(port: number): Promise<void> {
    const { client, connack } = await RawClient.connect(port, 4, { clientId: 'crash-pub', clean: false });
    if (this.sent.size > 0) assert.equal(connack.sessionPresent, true, 'the publisher session survived the crash');
    client.onPacket((p) => this.onPacket(client, p));
    this.client = client;
    // Resume: PUBREL for what got PUBREC, the PUBLISH again (DUP=1, same id) for what got nothing.
    for (const i of [...this.sent].sort((a, b) => a - b)) {
      if (this.completed.has(i)) continue;
      this.resent++;
      if (qosOf(i) === 2 && this.acked.has(i)) client.send({ cmd: 'pubrel', messageId: i });
      else this.publish(i, true);
    }
  }

  publish(i: number, dup = false): void {
    this.sent.add(i);
    this.client?.publish(topicOf(i), String(i), qosOf(i), i, { dup });
  }

  get inflight(): number {
    return this.sent.size - this.completed.size;
  }

  private onPacket(client: RawClient, p: Packet): void {
    const id = p.messageId ?? 0;
    if (p.cmd === 'puback') {
      this.acked.add(id);
      this.completed.add(id);
    } else if (p.cmd === 'pubrec') {
      this.acked.add(id);
      client.send({ cmd: 'pubrel', messageId: id });
    } else if (p.cmd === 'pubcomp') {
      this.completed.add(id);
    }
  }
}

/**
 * A subscriber that acknowledges everything. QoS 2 receipt as MQTT 4.3.3 method A: the message is
 * handed over at the first PUBLISH of a packet id, and the id is kept until PUBREL, so a re-sent
 * PUBLISH is not handed over again. That state survives reconnects, as a client's session must.
 */
class Subscriber {
  readonly delivered: number[] = [];
  private readonly qos2Received = new Set<number>();

  constructor(
    readonly clientId: string,
    readonly version: ProtocolVersion,
  ) {}

  async connect(port: number, expectSession: boolean): Promise<RawClient> {
    const properties = this.version === 5 ? { sessionExpiryInterval: 3600 } : undefined;
    const { client, connack } = await RawClient.connect(port, this.version, { clientId: this.clientId, clean: false, properties });
    assert.equal(connack.sessionPresent, expectSession, `${this.clientId}: session present`);
    client.onPacket((p) => this.onPacket(client, p));
    return client;
  }

  private onPacket(client: RawClient, p: Packet): void {
    if (p.cmd === 'publish') {
      const n = Number(p.payload.toString());
      if (p.qos === 1) {
        this.delivered.push(n);
        client.send({ cmd: 'puback', messageId: p.messageId });
      } else if (p.qos === 2) {
        if (!this.qos2Received.has(p.messageId!)) {
          this.qos2Received.add(p.messageId!);
          this.delivered.push(n);
        }
        client.send({ cmd: 'pubrec', messageId: p.messageId });
      }
    } else if (p.cmd === 'pubrel') {
      this.qos2Received.delete(p.messageId!);
      client.send({ cmd: 'pubcomp', messageId: p.messageId });
    }
  }

  duplicates(qos: 1 | 2): number {
    const mine = this.delivered.filter((n) => qosOf(n) === qos);
    return mine.length - new Set(mine).size;
  }
}

for (const durability of ['strict', 'relaxed'] as const) {
  test(`kill -9 of the broker mid-stream, twice (durability ${durability}): every acknowledged message is delivered, no QoS 2 duplicate`, async () => {
    const broker = new BrokerOnDisk(undefined, ['--durability', durability]);
    const clients: RawClient[] = [];
    const pub = new Publisher();
    const offline = new Subscriber('crash-sub-offline', 4);
    const online = new Subscriber('crash-sub-online', 5);
    try {
      let port = await broker.start();
      for (const sub of [offline, online]) {
        const c = await sub.connect(port, false);
        clients.push(c);
        await c.subscribe('crash/q1', 1);
        await c.subscribe('crash/q2', 2);
      }
      await clients[0].disconnect(); // the offline subscriber's messages queue up in the store
      let onlineClient = clients[1];

      await pub.connect(port);
      let crashes = 0;
      for (let i = 1; i <= N; i++) {
        await waitUntil(() => pub.inflight < WINDOW, 'the publisher window', 10_000);
        pub.publish(i);
        if (crashes < CRASH_AT.length && pub.acked.size >= CRASH_AT[crashes]) {
          crashes++;
          port = await broker.restart(); // SIGKILL with PUBLISHes and acks in flight, then start again
          await onlineClient.closedPromise;
          await pub.connect(port);
          onlineClient = await online.connect(port, true);
          clients.push(onlineClient);
        }
      }
      assert.equal(crashes, 2);
      await waitUntil(() => pub.completed.size === N, 'every publish to complete', 20_000);

      const offlineClient = await offline.connect(port, true);
      clients.push(offlineClient, pub.client!);
      for (const sub of [offline, online]) {
        await waitUntil(() => new Set(sub.delivered).size >= pub.acked.size, `${sub.clientId} to receive every acknowledged message`, 20_000);
      }

      const figures = {
        durability,
        sent: pub.sent.size,
        resentAfterCrash: pub.resent,
        acked: pub.acked.size,
        deliveredOffline: offline.delivered.length,
        deliveredOnline: online.delivered.length,
        qos1DuplicatesOffline: offline.duplicates(1),
        qos1DuplicatesOnline: online.duplicates(1),
        qos2DuplicatesOffline: offline.duplicates(2),
        qos2DuplicatesOnline: online.duplicates(2),
      };
      console.log(`# kill -9 figures: ${JSON.stringify(figures)}`);

      for (const sub of [offline, online]) {
        const got = new Set(sub.delivered);
        const missing = [...pub.acked].filter((i) => !got.has(i));
        assert.deepEqual(missing, [], `${sub.clientId}: acknowledged messages not delivered`);
        assert.equal(sub.duplicates(2), 0, `${sub.clientId}: QoS 2 delivered twice`);
        assert.ok(sub.delivered.every((n) => Number.isInteger(n) && n >= 1 && n <= N));
      }
      assert.equal(pub.acked.size, N);
    } finally {
      for (const c of clients) await c.destroy();
      if (pub.client) await pub.client.destroy();
      await broker.stop();
    }
  });
}
