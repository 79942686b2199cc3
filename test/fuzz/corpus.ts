import mqttPacket from 'mqtt-packet';
import type { Packet, ProtocolVersion } from '../../src/protocol/packets';

/** mulberry32: a small seeded PRNG, so a failing run can be repeated with FUZZ_SEED. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function fuzzSeed(): number {
  const fromEnv = process.env.FUZZ_SEED;
  return fromEnv !== undefined ? Number(fromEnv) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
}

export class Rand {
  constructor(readonly next: () => number) {}
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

export const enc = (packet: Packet, version: ProtocolVersion): Buffer => mqttPacket.generate(packet, { protocolVersion: version });

export function connectPacket(version: ProtocolVersion, clientId: string): Packet {
  return { cmd: 'connect', protocolId: version === 3 ? 'MQIsdp' : 'MQTT', protocolVersion: version, clean: true, keepalive: 30, clientId };
}

/** Valid packets a client may send (and a few it may not), for mutation. */
export function validPackets(version: ProtocolVersion): Packet[] {
  const v5 = version === 5;
  const packets: Packet[] = [
    {
      cmd: 'connect',
      protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: version,
      clean: false,
      keepalive: 10,
      clientId: 'fuzz-c',
      username: 'u',
      password: Buffer.from('p'),
      will: { topic: 'fuzz/will', payload: Buffer.from('w'), qos: 1, retain: false, properties: v5 ? { willDelayInterval: 1, contentType: 'x' } : undefined },
      properties: v5 ? { sessionExpiryInterval: 5, receiveMaximum: 10, maximumPacketSize: 1000, topicAliasMaximum: 3, userProperties: { a: 'b' } } : undefined,
    },
    { cmd: 'publish', topic: 'fuzz/t', payload: Buffer.from('hello'), qos: 0, dup: false, retain: false },
    { cmd: 'publish', topic: 'fuzz/t', payload: Buffer.from('hello'), qos: 1, dup: false, retain: true, messageId: 1 },
    {
      cmd: 'publish',
      topic: 'fuzz/t2',
      payload: Buffer.from('x'),
      qos: 2,
      dup: true,
      retain: false,
      messageId: 2,
      properties: v5 ? { topicAlias: 1, messageExpiryInterval: 5, payloadFormatIndicator: true, responseTopic: 'r/t', correlationData: Buffer.from('c'), userProperties: { k: ['v1', 'v2'] } } : undefined,
    },
    { cmd: 'puback', messageId: 1, reasonCode: v5 ? 0x10 : undefined },
    { cmd: 'pubrec', messageId: 2, reasonCode: v5 ? 0x80 : undefined },
    { cmd: 'pubrel', messageId: 2, reasonCode: v5 ? 0x92 : undefined, properties: v5 ? { reasonString: 'r' } : undefined },
    { cmd: 'pubcomp', messageId: 2 },
    {
      cmd: 'subscribe',
      messageId: 3,
      subscriptions: [
        { topic: 'fuzz/#', qos: 1, nl: v5, rap: v5, rh: v5 ? 1 : undefined },
        { topic: '$share/g/fuzz/+', qos: 2 },
      ],
      properties: v5 ? { subscriptionIdentifier: 7, userProperties: { s: 't' } } : undefined,
    },
    { cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['fuzz/#', 'a/+'] },
    { cmd: 'pingreq' },
    { cmd: 'disconnect', reasonCode: v5 ? 0x04 : undefined, properties: v5 ? { sessionExpiryInterval: 0 } : undefined },
  ];
  if (v5) packets.push({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'm', authenticationData: Buffer.from('d') } });
  return packets;
}

/** One fuzz case: bytes derived from a valid packet by a random mutation, or plain random bytes. */
export function mutate(rand: Rand, valid: Buffer): { kind: string; bytes: Buffer } {
  const b = Buffer.from(valid);
  switch (rand.int(9)) {
    case 0: {
      const n = 1 + rand.int(4);
      for (let i = 0; i < n; i++) b[rand.int(b.length)] = rand.int(256);
      return { kind: 'flip', bytes: b };
    }
    case 1:
      return { kind: 'truncate', bytes: b.subarray(0, rand.int(b.length)) };
    case 2:
      if (b.length > 1) b[1] = rand.int(256); // wrong remaining length
      return { kind: 'length', bytes: b };
    case 3:
      // huge remaining length, then the original body
      return { kind: 'huge', bytes: Buffer.concat([Buffer.from([b[0], 0xff, 0xff, 0xff, 0x7f]), b.subarray(2)]) };
    case 4:
      return { kind: 'five-byte-length', bytes: Buffer.from([b[0], 0x80, 0x80, 0x80, 0x80, 0x01]) };
    case 5: {
      // insert random bytes in the body, fixing the remaining length when it fits in one byte
      const at = 2 + rand.int(Math.max(1, b.length - 2));
      const extra = rand.bytes(1 + rand.int(8));
      const out = Buffer.concat([b.subarray(0, at), extra, b.subarray(at)]);
      if (b.length > 1 && b[1] < 0x80 && out.length - 2 < 0x80) out[1] = out.length - 2;
      return { kind: 'insert', bytes: out };
    }
    case 6: {
      // invalid properties: overwrite a byte after the variable header start with a property id / huge length
      const at = 2 + rand.int(Math.max(1, b.length - 2));
      if (at < b.length) b[at] = rand.pick([0x00, 0x01, 0x02, 0x0b, 0x23, 0x26, 0x7f, 0xff, 0x80]);
      return { kind: 'property', bytes: b };
    }
    case 7:
      return { kind: 'twice', bytes: Buffer.concat([b, b]) };
    default:
      return { kind: 'random', bytes: rand.bytes(1 + rand.int(64)) };
  }
}
