// The harness of the channel unit tests: a fake Transport (the only stand-in), and helpers that
// drive a Channel on a real Broker with bytes, no sockets.
import assert from 'node:assert/strict';
import mqttPacket from 'mqtt-packet';
import { Broker } from '../../src/broker/broker';
import { Channel, type Transport } from '../../src/broker/channel';
import { type Clock, systemClock } from '../../src/broker/clock';
import { defaultBrokerOptions, type BrokerOptions } from '../../src/broker/options';
import type { ConnectPacket, Packet, ProtocolVersion } from '../../src/protocol/packets';
import { MemoryStore } from '../../src/store/memory-store';
import type { Store } from '../../src/store/types';
import { GatedStore } from '../guarantees/stores';

export class FakeTransport implements Transport {
  readonly written: Buffer[] = [];
  closed = false;
  bufferedBytes = 0;
  readonly remoteAddress = 'fake:1';

  write(data: Buffer): void {
    this.written.push(Buffer.from(data));
  }

  close(): void {
    this.closed = true;
  }

  /** Whether the channel asked to stop reading (backpressure). */
  paused = false;
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  /** Everything written so far, decoded as the client would. */
  packets(version: ProtocolVersion): Packet[] {
    const out: Packet[] = [];
    const parser = mqttPacket.parser({ protocolVersion: version });
    parser.on('packet', (p: Packet) => out.push(p));
    parser.on('error', (e: Error) => assert.fail(`broker wrote an unparsable packet: ${e.message}`));
    parser.parse(Buffer.concat(this.written));
    return out;
  }

  cmds(version: ProtocolVersion): string[] {
    return this.packets(version).map((p) => p.cmd);
  }
}

export const enc = (packet: Packet, version: ProtocolVersion) => mqttPacket.generate(packet, { protocolVersion: version });

/** Lets the store commits (setImmediate in MemoryStore) and promise chains run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

export async function withBroker(
  fn: (broker: Broker, store: GatedStore) => Promise<void>,
  options: Partial<BrokerOptions> = {},
  inner: Store = new MemoryStore(),
  clock: Clock = systemClock,
): Promise<void> {
  const store = new GatedStore(inner);
  const broker = new Broker(store, { ...defaultBrokerOptions, ...options }, undefined, undefined, clock);
  await broker.start();
  try {
    await fn(broker, store);
  } finally {
    store.release();
    await broker.stop();
  }
}

export async function connected(
  broker: Broker,
  version: ProtocolVersion,
  connect: Partial<ConnectPacket> & { clientId: string },
  now = 1_000_000,
): Promise<{ ch: Channel; t: FakeTransport }> {
  const t = new FakeTransport();
  const ch = new Channel(broker, t, now);
  ch.receive(enc({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, keepalive: 0, ...connect }, version), now);
  await settle();
  assert.equal(ch.state, 'connected');
  return { ch, t };
}
