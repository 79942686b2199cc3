// Unit tests of the broker core's side of the store ports (src/store/types.ts): what the core does
// when the store hands it a session held elsewhere (openSession), gives it a session without a
// connection (adopt), or takes one away (release). In cluster mode the RocketMQ store does that
// for what other nodes did; here a MemoryStore that holds sessions "elsewhere" plays that part.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PublishPacket } from '../../src/protocol/packets';
import { MemoryStore } from '../../src/store/memory-store';
import type { LoadedSession, Message } from '../../src/store/types';
import { connected, enc, settle, withBroker } from './harness';

/** A memory store that also holds sessions this node does not: `openSession` hands one over, once. */
class HeldElsewhereStore extends MemoryStore {
  readonly elsewhere = new Map<string, LoadedSession>();

  override async openSession(clientId: string): Promise<LoadedSession | undefined> {
    const session = this.elsewhere.get(clientId);
    this.elsewhere.delete(clientId);
    return session;
  }
}

function message(topic: string, payload: string, qos: 0 | 1 | 2): Message {
  return { topic, payload: Buffer.from(payload), qos, retain: false, publisherId: 'someone', createdAt: Date.now() };
}

function publishes(packets: { cmd: string }[]): PublishPacket[] {
  return packets.filter((p): p is PublishPacket => p.cmd === 'publish');
}

test('store port: a session the store brings from elsewhere resumes with its packet ids, PUBREC states, QoS 2 records and routes', async () => {
  const store = new HeldElsewhereStore();
  store.elsewhere.set('moved', {
    record: {
      clientId: 'moved',
      protocolVersion: 5,
      expiryInterval: 60,
      subscriptions: [{ filter: 'm/#', qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
      disconnectedAt: Date.now() - 1000,
    },
    queue: [
      { seq: 1, packetId: 4242, message: message('m/a', 'in flight', 1), qos: 1, subscriptionIds: [], retainAsPublished: false, state: 'queued' },
      { seq: 2, packetId: 4243, message: message('m/b', 'received', 2), qos: 2, subscriptionIds: [], retainAsPublished: false, state: 'pubrec' },
    ],
    inboundQos2: [17],
  });
  await withBroker(
    async (broker) => {
      assert.equal(broker.sessions.has('moved'), false, 'not held here before the CONNECT');
      const { ch, t } = await connected(broker, 5, { clientId: 'moved', clean: false, properties: { sessionExpiryInterval: 60 } });
      const [connack, ...rest] = t.packets(5);
      assert.equal(connack.cmd === 'connack' && connack.sessionPresent, true);
      assert.deepEqual(
        rest.map((p) => [p.cmd, 'messageId' in p ? p.messageId : undefined, p.cmd === 'publish' ? p.dup : undefined]),
        [
          ['pubrel', 4243, undefined],
          ['publish', 4242, true],
        ],
        'only PUBREL for the delivery past PUBREC; the other re-sent with DUP=1 under the id the store gave',
      );

      // The QoS 2 id recorded elsewhere is still received: a re-sent PUBLISH gets PUBREC and is not routed.
      ch.receive(enc({ cmd: 'publish', topic: 'm/dup', payload: Buffer.from('dup'), qos: 2, dup: true, retain: false, messageId: 17 }, 5));
      ch.receive(enc({ cmd: 'pubrel', messageId: 17 }, 5));
      await settle();
      assert.deepEqual(t.cmds(5).slice(3), ['pubrec', 'pubcomp']);

      // Its subscription routes here now: a new message gets the next sequence's packet id.
      const { ch: pub } = await connected(broker, 4, { clientId: 'pub' });
      pub.receive(enc({ cmd: 'publish', topic: 'm/new', payload: Buffer.from('new'), qos: 1, dup: false, retain: false, messageId: 1 }, 4));
      await settle();
      const delivered = publishes(t.packets(5)).map((p) => [p.payload.toString(), p.messageId]);
      assert.deepEqual(delivered, [
        ['in flight', 4242],
        ['new', 3],
      ], 'the duplicate QoS 2 PUBLISH was not forwarded; the new message follows the stored ones');
    },
    {},
    store,
  );
});

test('store port: release closes the connection as taken over (0x8E), without the will, and stops routing to it', async () => {
  await withBroker(async (broker, store) => {
    const { t: watcherT, ch: watcher } = await connected(broker, 5, { clientId: 'watcher' });
    watcher.receive(enc({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'will/#', qos: 1 }] }, 5));
    const { ch: x, t: xT } = await connected(broker, 5, {
      clientId: 'x',
      properties: { sessionExpiryInterval: 60 },
      will: { topic: 'will/x', payload: Buffer.from('x is gone'), qos: 1, retain: false },
    });
    x.receive(enc({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'x/#', qos: 1 }] }, 5));
    await settle();

    broker.release('x');
    const last = xT.packets(5).at(-1);
    assert.equal(last?.cmd === 'disconnect' && last.reasonCode, 0x8e);
    assert.equal(xT.closed, true);
    assert.equal(broker.sessions.has('x'), false, 'the session is no longer held here');
    x.transportClosed(); // the socket closes afterwards: that is not an ungraceful disconnect of a held session

    const { ch: pub } = await connected(broker, 4, { clientId: 'pub' });
    const before = store.committed.length;
    pub.receive(enc({ cmd: 'publish', topic: 'x/1', payload: Buffer.from('to x'), qos: 1, dup: false, retain: false, messageId: 1 }, 4));
    pub.receive(enc({ cmd: 'publish', topic: 'will/marker', payload: Buffer.from('marker'), qos: 1, dup: false, retain: false, messageId: 2 }, 4));
    await settle();
    const ops = store.committed.slice(before).flat();
    assert.equal(ops.some((op) => op.op === 'enqueue' && op.clientId === 'x'), false, 'nothing queued for a released session');
    assert.deepEqual(publishes(watcherT.packets(5)).map((p) => p.payload.toString()), ['marker'], 'no will: the session lives on elsewhere');
  });
});

test('store port: adopt holds a session whose connection was cut elsewhere and publishes its will once', async () => {
  await withBroker(async (broker) => {
    const { t: watcherT, ch: watcher } = await connected(broker, 5, { clientId: 'watcher' });
    watcher.receive(enc({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'will/#', qos: 1 }] }, 5));
    await settle();
    const orphan: LoadedSession = {
      record: {
        clientId: 'orphan',
        protocolVersion: 4,
        expiryInterval: 60,
        subscriptions: [],
        will: { delayInterval: 0, message: { ...message('will/orphan', 'orphan is gone', 1), publisherId: 'orphan' } },
      },
      queue: [],
      inboundQos2: [],
    };
    broker.adopt(orphan);
    broker.adopt(orphan); // a second hand-over of a session already held changes nothing
    await settle();
    assert.equal(broker.sessions.get('orphan')?.online, false);
    assert.deepEqual(publishes(watcherT.packets(5)).map((p) => p.payload.toString()), ['orphan is gone']);
  });
});
