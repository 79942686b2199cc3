// Unit tests of the pure channel state machine: a Channel driven with bytes and clock ticks,
// a fake Transport (the only stand-in), and a real Broker on a MemoryStore. No sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Channel } from '../../src/broker/channel';
import { defaultBrokerOptions } from '../../src/broker/options';
import mqttPacket from 'mqtt-packet';
import type { Packet } from '../../src/protocol/packets';
import { FakeTransport, connected, enc, settle, withBroker } from './harness';

test('channel: CONNECT 3.1.1 → the exact CONNACK bytes; CONNECT 5 → CONNACK success with the broker limits', async () => {
  await withBroker(async (broker) => {
    const t = new FakeTransport();
    const ch = new Channel(broker, t, 0);
    ch.receive(enc({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 30, clientId: 'u1' }, 4), 0);
    await settle();
    assert.deepEqual(Buffer.concat(t.written), Buffer.from([0x20, 0x02, 0x00, 0x00]));
    assert.equal(ch.state, 'connected');
    assert.equal(ch.keepAliveMs, 30_000);

    const { t: t5 } = await connected(broker, 5, { clientId: 'u5' });
    const [connack] = t5.packets(5);
    assert.equal(connack.cmd, 'connack');
    if (connack.cmd !== 'connack') return;
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.sessionPresent, false);
    assert.equal(connack.properties?.maximumPacketSize, defaultBrokerOptions.maxPacketSize);
    assert.equal(connack.properties?.receiveMaximum, defaultBrokerOptions.receiveMaximum);
  });
});

test('channel: a CONNECT fed one byte at a time is decoded', async () => {
  await withBroker(async (broker) => {
    const t = new FakeTransport();
    const ch = new Channel(broker, t, 0);
    const bytes = enc({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId: 'bytewise', properties: { sessionExpiryInterval: 10 } }, 5);
    for (const b of bytes) ch.receive(Buffer.from([b]), 0);
    await settle();
    assert.deepEqual(t.cmds(5), ['connack']);
    assert.equal(broker.sessions.get('bytewise')?.expiryInterval, 10);
  });
});

test('channel: PUBLISH QoS 1 → PUBACK only after the store commit resolves', async () => {
  await withBroker(async (broker, store) => {
    const { ch: sub, t: subT } = await connected(broker, 5, { clientId: 'sub', properties: { sessionExpiryInterval: 60 } });
    sub.receive(enc({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'u/#', qos: 1 }] }, 5));
    await settle();
    const { ch: pub, t: pubT } = await connected(broker, 4, { clientId: 'pub' });
    store.hold();
    pub.receive(enc({ cmd: 'publish', topic: 'u/x', payload: Buffer.from('p'), qos: 1, dup: false, retain: false, messageId: 77 }, 4));
    await settle();
    assert.equal(store.pending.length, 1, 'one commit issued');
    assert.deepEqual(store.pending[0].map((op) => op.op), ['enqueue']);
    assert.deepEqual(pubT.cmds(4), ['connack'], 'no PUBACK while the commit is pending');
    assert.deepEqual(subT.cmds(5), ['connack', 'suback'], 'nothing delivered before the commit');
    store.release();
    await settle();
    assert.deepEqual(pubT.written.at(-1), Buffer.from([0x40, 0x02, 0x00, 77]));
    const delivered = subT.packets(5).at(-1);
    assert.equal(delivered?.cmd, 'publish');
    if (delivered?.cmd === 'publish') assert.equal(delivered.payload.toString(), 'p');
  });
});

test('channel: PUBLISH QoS 2 → PUBREC; the duplicate → PUBREC, not routed again; PUBREL → PUBCOMP', async () => {
  await withBroker(async (broker) => {
    const { t: subT, ch: sub } = await connected(broker, 4, { clientId: 'sub2' });
    sub.receive(enc({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'u/#', qos: 0 }] }, 4));
    await settle();
    const { ch, t } = await connected(broker, 5, { clientId: 'pub2' });
    const publish = enc({ cmd: 'publish', topic: 'u/q2', payload: Buffer.from('x'), qos: 2, dup: false, retain: false, messageId: 9 }, 5);
    ch.receive(publish);
    await settle();
    ch.receive(publish);
    await settle();
    ch.receive(enc({ cmd: 'pubrel', messageId: 9 }, 5));
    await settle();
    assert.deepEqual(
      t.packets(5).map((p) => `${p.cmd}:${p.messageId ?? ''}`),
      ['connack:', 'pubrec:9', 'pubrec:9', 'pubcomp:9'],
    );
    assert.deepEqual(subT.cmds(4), ['connack', 'suback', 'publish'], 'delivered once');
    assert.equal(broker.stats.messagesReceived, 1);
  });
});

test('channel: keep alive: tick(now) past 1.5 × keep alive closes with DISCONNECT 0x8D, not before', async () => {
  await withBroker(async (broker) => {
    const t0 = 5_000_000;
    const { ch, t } = await connected(broker, 5, { clientId: 'ka', keepalive: 10 }, t0);
    ch.tick(t0 + 15_000);
    assert.equal(t.closed, false, 'exactly 1.5 × keep alive is still alive');
    ch.receive(enc({ cmd: 'pingreq' }, 5), t0 + 14_000); // traffic resets the clock
    ch.tick(t0 + 28_000);
    assert.equal(t.closed, false);
    ch.tick(t0 + 29_001);
    assert.equal(t.closed, true);
    const last = t.packets(5).at(-1);
    assert.equal(last?.cmd, 'disconnect');
    if (last?.cmd === 'disconnect') assert.equal(last.reasonCode, 0x8d);
    assert.equal(ch.state, 'closed');
  });
});

test('channel: keep alive 0 never times out; a missing CONNECT times out with a close', async () => {
  await withBroker(async (broker) => {
    const { ch, t } = await connected(broker, 4, { clientId: 'ka0', keepalive: 0 }, 0);
    ch.tick(10 ** 9);
    assert.equal(t.closed, false);

    const t2 = new FakeTransport();
    const idle = new Channel(broker, t2, 0);
    idle.tick(defaultBrokerOptions.connectTimeoutMs);
    assert.equal(t2.closed, false);
    idle.tick(defaultBrokerOptions.connectTimeoutMs + 1);
    assert.equal(t2.closed, true);
    assert.deepEqual(t2.written, []);
  });
});

test('channel: malformed bytes → DISCONNECT 0x81 (MQTT 5), a plain close (3.1.1); counted in stats', async () => {
  await withBroker(async (broker) => {
    const { ch, t } = await connected(broker, 5, { clientId: 'bad5' });
    ch.receive(Buffer.from([0x36, 0x00]));
    assert.equal(t.closed, true);
    const last = t.packets(5).at(-1);
    assert.equal(last?.cmd, 'disconnect');
    if (last?.cmd === 'disconnect') assert.equal(last.reasonCode, 0x81);

    const { ch: ch4, t: t4 } = await connected(broker, 4, { clientId: 'bad4' });
    ch4.receive(Buffer.from([0x62, 0x02, 0x00])); // a PUBREL cut short: the decoder waits for the rest
    assert.equal(t4.closed, false);
    ch4.receive(Buffer.from([0x01]));
    await settle();
    assert.equal(t4.closed, false);
    assert.deepEqual(t4.cmds(4), ['connack', 'pubcomp']);
    ch4.receive(Buffer.from([0x60, 0x02, 0x00, 0x01])); // PUBREL with flags 0000 instead of 0010: malformed
    assert.equal(t4.closed, true);
    assert.ok(!t4.cmds(4).includes('disconnect'));
    assert.equal(broker.stats.malformedPackets, 2);
  });
});

test('channel: the first packet must be CONNECT; a second CONNECT is a protocol error (0x82)', async () => {
  await withBroker(async (broker) => {
    const t = new FakeTransport();
    const ch = new Channel(broker, t, 0);
    ch.receive(enc({ cmd: 'pingreq' }, 4));
    assert.equal(t.closed, true);
    assert.deepEqual(t.written, []);

    const { ch: ch5, t: t5 } = await connected(broker, 5, { clientId: 'twice' });
    ch5.receive(enc({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId: 'twice' }, 5));
    const last = t5.packets(5).at(-1);
    assert.equal(last?.cmd, 'disconnect');
    if (last?.cmd === 'disconnect') assert.equal(last.reasonCode, 0x82);
    assert.equal(t5.closed, true);
  });
});

test('channel: an oversize packet is refused from its fixed header (DISCONNECT 0x95)', async () => {
  await withBroker(
    async (broker) => {
      const { ch, t } = await connected(broker, 5, { clientId: 'big' });
      ch.receive(Buffer.from([0x30, 0x81, 0x08])); // remaining length 1025 > 1024 - header
      assert.equal(t.closed, true);
      const last = t.packets(5).at(-1);
      assert.equal(last?.cmd, 'disconnect');
      if (last?.cmd === 'disconnect') assert.equal(last.reasonCode, 0x95);
    },
    { maxPacketSize: 1024 },
  );
});

test('channel: an unsupported protocol version gets CONNACK 0x01 (3.1.1 code) and a close', async () => {
  await withBroker(async (broker) => {
    const t = new FakeTransport();
    const ch = new Channel(broker, t, 0);
    const bytes = enc({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0, clientId: 'v6' }, 4);
    bytes[8] = 6; // protocol level byte
    ch.receive(bytes);
    assert.equal(t.closed, true);
    assert.deepEqual(Buffer.concat(t.written), Buffer.from([0x20, 0x02, 0x00, 0x01]));
  });
});

test('channel: Receive Maximum is enforced after PUBRELs for QoS 2 flows of an earlier connection (DISCONNECT 0x93)', async () => {
  await withBroker(
    async (broker, store) => {
      const props = { sessionExpiryInterval: 60 };
      const { ch: first } = await connected(broker, 5, { clientId: 'rm', properties: props });
      for (const id of [1, 2]) {
        first.receive(enc({ cmd: 'publish', topic: 'rm/t', payload: Buffer.from('q2'), qos: 2, dup: false, retain: false, messageId: id }, 5));
      }
      await settle();
      first.transportClosed();

      const { ch, t } = await connected(broker, 5, { clientId: 'rm', clean: false, properties: props });
      ch.receive(enc({ cmd: 'pubrel', messageId: 1 }, 5));
      ch.receive(enc({ cmd: 'pubrel', messageId: 2 }, 5));
      await settle();
      assert.deepEqual(t.cmds(5), ['connack', 'pubcomp', 'pubcomp']);
      assert.equal(ch.inboundInflight, 0, 'the released flows were not counted on this connection');

      store.hold(); // no PUBACK until released: the QoS 1 publishes stay in flight
      for (const id of [10, 11, 12]) {
        ch.receive(enc({ cmd: 'publish', topic: 'rm/t', payload: Buffer.from('q1'), qos: 1, dup: false, retain: false, messageId: id }, 5));
      }
      assert.equal(t.closed, true, 'a third unacknowledged QoS 1 PUBLISH exceeds Receive Maximum 2');
      const last = t.packets(5).at(-1);
      assert.equal(last?.cmd, 'disconnect');
      if (last?.cmd === 'disconnect') assert.equal(last.reasonCode, 0x93);
    },
    { receiveMaximum: 2 },
  );
});

for (const outcome of ['stored', 'failed'] as const) {
  test(`channel: after a takeover, a re-sent QoS 2 PUBLISH waits for the first connection's commit (${outcome})`, async () => {
    await withBroker(
      async (broker, store) => {
        const connect = { clientId: 'q2-takeover', clean: false };
        const publish = (dup: boolean) =>
          enc({ cmd: 'publish', topic: 'q2/t', payload: Buffer.from('once'), qos: 2, dup, retain: false, messageId: 5 }, 4);
        const { ch: first, t: firstT } = await connected(broker, 4, connect);
        // Only the publish's commit is held: the takeover's session commit completes meanwhile,
        // as it can in the cluster store, where the two are separate RocketMQ SENDs.
        store.hold((ops) => ops.some((op) => op.op === 'putInboundQos2'));
        first.receive(publish(false));
        await settle();
        assert.deepEqual(firstT.cmds(4), ['connack'], 'no PUBREC before the message is stored');

        const { ch, t } = await connected(broker, 4, connect);
        assert.equal(firstT.closed, true, 'the first connection was taken over');
        ch.receive(publish(true));
        await settle();
        assert.deepEqual(t.cmds(4), ['connack'], 'the duplicate is not answered while the first commit may still fail');

        if (outcome === 'stored') {
          store.release();
          await settle();
          assert.deepEqual(t.cmds(4), ['connack', 'pubrec']);
          assert.equal(t.closed, false);
        } else {
          store.fail();
          await settle();
          assert.deepEqual(t.cmds(4), ['connack'], 'never PUBREC for a message that was not stored');
          assert.equal(t.closed, true, 'MQTT 3.1.1: closed, so the client sends the PUBLISH again');
        }
      },
      { publishMaxRetries: 0 },
    );
  });
}

test('channel: reading pauses while too many requests (or too many bytes) wait for the store, for MQTT 3.1.1 too, and resumes at half', async () => {
  await withBroker(
    async (broker, store) => {
      const { ch, t } = await connected(broker, 4, { clientId: 'bp' });
      store.hold();
      const publish = (id: number, bytes = 10) => enc({ cmd: 'publish', topic: 'bp/t', payload: Buffer.alloc(bytes), qos: 1, messageId: id, retain: false, dup: false }, 4);
      for (let id = 1; id <= 9; id++) ch.receive(publish(id));
      assert.equal(t.paused, false, 'below receiveMaximum (10)');
      ch.receive(publish(10));
      assert.equal(t.paused, true, 'ten requests wait for the store: stop reading');
      // A tick while paused is not the client's silence: no keep-alive close.
      ch.tick(Date.now() + 3_600_000);
      assert.equal(ch.state, 'connected');
      store.release();
      await settle();
      await settle();
      assert.equal(t.paused, false, 'answered: reading again');
      assert.equal(t.cmds(4).filter((c) => c === 'puback').length, 10);

      // Bytes: two 600-byte payloads are over maxPendingInboundBytes (1 KiB).
      store.hold();
      ch.receive(publish(11, 600));
      assert.equal(t.paused, false);
      ch.receive(publish(12, 600));
      assert.equal(t.paused, true, 'over the byte bound');
      store.release();
      await settle();
      assert.equal(t.paused, false);
    },
    { receiveMaximum: 10, maxPendingInboundBytes: 1024 },
  );
});

test('channel: nothing is read between CONNECT and CONNACK', async () => {
  await withBroker(async (broker, store) => {
    const t = new FakeTransport();
    const ch = new Channel(broker, t, 0);
    store.hold(); // the session's store work holds the CONNACK back
    ch.receive(enc({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, keepalive: 0, clientId: 'slow-connect' }, 4), 0);
    await settle();
    assert.equal(ch.state, 'authenticating');
    assert.equal(t.paused, true);
    store.release();
    await settle();
    assert.equal(ch.state, 'connected');
    assert.equal(t.paused, false);
  });
});

test('channel: packet ids wrap past 65535 for a long-lived session; an id still in flight is never reused, and the delivery that needs it waits', async () => {
  await withBroker(async (broker) => {
    const { ch: sub, t: subT } = await connected(broker, 4, { clientId: 'wrap-sub' });
    sub.receive(enc({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'w/#', qos: 1 }] }, 4));
    const { ch: pub, t: pubT } = await connected(broker, 4, { clientId: 'wrap-pub' });
    let pubacks = 0;
    let pubReadUpTo = 0;
    const pubParser = mqttPacket.parser({ protocolVersion: 4 });
    pubParser.on('packet', (p: Packet) => {
      if (p.cmd === 'puback') pubacks++;
    });
    await settle();
    // Read what the broker writes to the subscriber incrementally (65k packets).
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    const received: { id: number; payload: string }[] = [];
    parser.on('packet', (p: Packet) => {
      if (p.cmd === 'publish') received.push({ id: p.messageId!, payload: p.payload.toString() });
    });
    let readUpTo = 0;
    const inFlight = new Set<number>();
    let holdFirst = true;
    const drain = (): void => {
      for (; readUpTo < subT.written.length; readUpTo++) parser.parse(subT.written[readUpTo]!);
      for (const r of received.splice(0)) {
        assert.ok(!inFlight.has(r.id), `packet id ${r.id} sent again while still in flight`);
        inFlight.add(r.id);
        delivered.push(r.payload);
        if (r.id === 1 && holdFirst) continue; // the client keeps id 1 unacknowledged
        sub.receive(enc({ cmd: 'puback', messageId: r.id }, 4));
        inFlight.delete(r.id);
      }
    };
    const delivered: string[] = [];
    const total = 65535 + 5;
    for (let from = 0; from < total; from += 500) {
      const frames: Buffer[] = [];
      for (let i = from; i < Math.min(total, from + 500); i++) {
        frames.push(enc({ cmd: 'publish', topic: 'w/x', payload: Buffer.from(String(i)), qos: 1, dup: false, retain: false, messageId: (i % 65535) + 1 }, 4));
      }
      pub.receive(Buffer.concat(frames));
      // The memory store completes one commit per event-loop turn: let the batch through.
      const acked = Math.min(total, from + 500);
      for (let turn = 0; turn < 10_000 && (pubacks < acked || delivered.length < Math.min(acked, 65535)); turn++) {
        await new Promise((resolve) => setImmediate(resolve));
        for (; pubReadUpTo < pubT.written.length; pubReadUpTo++) pubParser.parse(pubT.written[pubReadUpTo]!);
        drain();
      }
    }
    assert.equal(delivered.length, 65535, 'every id once; the 65 536th delivery needs id 1, which is still in flight');
    assert.ok(inFlight.has(1));
    holdFirst = false;
    sub.receive(enc({ cmd: 'puback', messageId: 1 }, 4));
    inFlight.delete(1);
    for (let turn = 0; turn < 1000 && delivered.length < total; turn++) {
      await new Promise((resolve) => setImmediate(resolve));
      drain();
    }
    assert.equal(delivered.length, total);
    assert.deepEqual(delivered, Array.from({ length: total }, (_, i) => String(i)), 'all of them, in order, once');
  });
});
