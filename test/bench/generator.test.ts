// Tests of the benchmark generator's encoding and counting. They run against a real Aedes started
// in-process, bound by message counts (no timed assertions): a broker that drops or duplicates
// messages must show up as lost / duplicated, and a correct one as 0 / 0.
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Aedes, type AedesPublishPacket } from 'aedes';
import * as mqtt from 'mqtt-packet';
import { FrameReader, PublishEncoder, puback, pubcomp, pubrec, pubrel, readHeader, type FrameSink } from '../../bench/generator/codec';
import { Engine } from '../../bench/generator/engine';
import { Stream } from '../../bench/generator/tracker';
import type { CaseSpec, QoS } from '../../bench/types';

function spec(over: Partial<CaseSpec>): CaseSpec {
  return {
    id: 'test',
    scenario: 'p2p',
    qos: 1,
    payloadBytes: 64,
    publishers: 3,
    subscribers: 3,
    window: 256,
    ratePerPublisher: 0,
    warmupMs: 0,
    measureMs: 60_000, // the count bound below ends the case long before this
    drainMs: 20_000,
    maxMessagesPerPublisher: 100,
    stallMs: 300,
    setupTimeoutMs: 20_000,
    connectConcurrency: 10,
    connections: 0,
    ackBatchMs: 1,
    ...over,
  };
}

describe('codec', () => {
  it('encodes PUBLISH and acks exactly like mqtt-packet', () => {
    for (const qos of [0, 1, 2] as QoS[]) {
      const enc = new PublishEncoder('bench/p2p/7', qos, 200);
      const mine = enc.encode(7, 123456, 42.5, qos > 0 ? 513 : 0);
      const payload = mine.subarray(mine.length - 200);
      const theirs = mqtt.generate({ cmd: 'publish', topic: 'bench/p2p/7', qos, dup: false, retain: false, payload, messageId: qos > 0 ? 513 : undefined });
      assert.deepEqual(mine, theirs);
      assert.deepEqual(readHeader(payload), { pubId: 7, seq: 123456, sentAt: 42.5 });
    }
    assert.deepEqual(puback(9), mqtt.generate({ cmd: 'puback', messageId: 9 }));
    assert.deepEqual(pubrec(9), mqtt.generate({ cmd: 'pubrec', messageId: 9 }));
    assert.deepEqual(pubrel(9), mqtt.generate({ cmd: 'pubrel', messageId: 9 }));
    assert.deepEqual(pubcomp(9), mqtt.generate({ cmd: 'pubcomp', messageId: 9 }));
  });

  it('splits a byte stream into frames, whatever the chunking', () => {
    const big = new PublishEncoder('t/big', 1, 1024).encode(1, 2, 3, 77); // 2-byte remaining length
    const small = new PublishEncoder('t', 0, 16).encode(4, 5, 6, 0);
    const connack = mqtt.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false });
    const stream = Buffer.concat([connack, big, puback(77), small, pubrel(3)]);
    for (const step of [1, 3, 7, stream.length]) {
      const seen: string[] = [];
      const sink: FrameSink = {
        publish: (qos, pid, buf, start, end) => {
          const h = readHeader(buf.subarray(start, end));
          seen.push(`publish q${qos} id${pid} len${end - start} pub${h?.pubId} seq${h?.seq}`);
        },
        ack: (type, pid) => seen.push(`ack ${type} ${pid}`),
        other: (frame) => seen.push(`other ${frame[0] >> 4} ${frame.length}`),
        error: (msg) => seen.push(`error ${msg}`),
      };
      const r = new FrameReader(sink);
      for (let o = 0; o < stream.length; o += step) r.push(stream.subarray(o, o + step));
      assert.deepEqual(seen, ['other 2 4', 'publish q1 id77 len1024 pub1 seq2', 'ack 4 77', 'publish q0 id0 len16 pub4 seq5', 'ack 6 3'], `chunk size ${step}`);
    }
  });
});

describe('stream accounting', () => {
  it('counts unique, duplicate and out-of-order deliveries', () => {
    const s = new Stream();
    for (const seq of [0, 1, 2, 2, 5, 3, 4, 4, 1000]) s.record(seq);
    assert.equal(s.unique, 7);
    assert.equal(s.duplicates, 2);
    assert.equal(s.outOfOrder, 2); // 3 and 4 arrived after 5
    assert.equal(s.highest, 1000);
  });
});

describe('engine against Aedes', () => {
  let broker: Aedes;
  let server: net.Server;
  let port = 0;
  // Fault injection, switched per test.
  let dropEvery = 0;
  let dupEvery = 0;
  let dropped = 0;
  let injected = 0;

  before(async () => {
    broker = await Aedes.createBroker({
      authorizeForward: (_client, packet) => {
        const h = readHeader(packet.payload as Buffer);
        if (dropEvery > 0 && h && h.seq % dropEvery === 3) {
          dropped++;
          return null;
        }
        return packet;
      },
    });
    broker.on('publish', (packet: AedesPublishPacket, client: unknown) => {
      const h = client ? readHeader(packet.payload as Buffer) : null;
      if (dupEvery > 0 && h && h.seq % dupEvery === 5) {
        injected++;
        broker.publish({ cmd: 'publish', topic: packet.topic, payload: packet.payload, qos: packet.qos, retain: false, dup: false }, () => undefined);
      }
    });
    server = net.createServer((s) => broker.handle(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const addr = server.address();
    port = typeof addr === 'object' && addr ? addr.port : 0;
  });

  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => broker.close(() => r()));
  });

  for (const qos of [0, 1, 2] as QoS[]) {
    it(`p2p QoS ${qos}: every message arrives once, in order`, async () => {
      dropEvery = 0;
      dupEvery = 0;
      // QoS 1 writes each ack at once, QoS 0 and 2 batch them: both paths are exercised.
      const r = await new Engine(spec({ qos, ackBatchMs: qos === 1 ? 0 : 1 }), '127.0.0.1', port).run();
      assert.deepEqual(r.correctness.violations, []);
      assert.equal(r.totalPublished, 300);
      assert.equal(r.correctness.expected, 300);
      assert.equal(r.correctness.received, 300);
      assert.equal(r.correctness.lost, 0);
      assert.equal(r.correctness.duplicates, 0);
      assert.equal(r.correctness.outOfOrder, 0);
      assert.ok(r.drainedFully);
    });
  }

  it('fan-out and fan-in count every delivery', async () => {
    dropEvery = 0;
    dupEvery = 0;
    const fo = await new Engine(spec({ scenario: 'fanout', publishers: 1, subscribers: 20, maxMessagesPerPublisher: 50 }), '127.0.0.1', port).run();
    assert.deepEqual(fo.correctness.violations, []);
    assert.equal(fo.correctness.expected, 1000);
    assert.equal(fo.correctness.received, 1000);
    const fi = await new Engine(spec({ scenario: 'fanin', publishers: 20, subscribers: 1, maxMessagesPerPublisher: 20, ratePerPublisher: 1000, window: 4 }), '127.0.0.1', port).run();
    assert.deepEqual(fi.correctness.violations, []);
    assert.equal(fi.correctness.received, 400);
  });

  it('reports messages the broker drops as lost (a violation at QoS 1)', async () => {
    dropEvery = 10;
    dupEvery = 0;
    dropped = 0;
    // The drain waits for the dropped messages until its bound, so keep that short here.
    const r = await new Engine(spec({ qos: 1, drainMs: 1000 }), '127.0.0.1', port).run();
    dropEvery = 0;
    assert.equal(r.drainedFully, false);
    assert.equal(dropped, 30); // seq 3, 13, ..., 93 of each of 3 publishers
    assert.equal(r.correctness.lost, dropped);
    assert.equal(r.correctness.received, 300 - dropped);
    assert.ok(r.correctness.violations.some((v) => v.startsWith('lost 30 at QoS 1')), r.correctness.violations.join('; '));
  });

  it('reports duplicates the broker injects (a violation at QoS 2)', async () => {
    dropEvery = 0;
    dupEvery = 10;
    injected = 0;
    const r = await new Engine(spec({ qos: 2 }), '127.0.0.1', port).run();
    dupEvery = 0;
    assert.equal(injected, 30);
    assert.equal(r.correctness.duplicates, injected);
    assert.equal(r.correctness.lost, 0);
    assert.ok(r.correctness.violations.some((v) => v === '30 duplicates at QoS 2'), r.correctness.violations.join('; '));
  });
});
