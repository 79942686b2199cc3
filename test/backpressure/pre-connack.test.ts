// What a client sends behind its CONNECT, before the CONNACK, is held until the CONNACK and is
// bounded: past 1000 packets or 1 MiB the connection is refused with 0x97 (Quota exceeded), the
// held packets are dropped unprocessed, and the broker goes on serving everyone else.
// Authentication is held open on purpose so that the packets must wait.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqttPacket from 'mqtt-packet';
import WebSocket from 'ws';
import type { BrokerHooks } from '../../src/broker/options';
import { freePort } from '../helpers';
import { RawClient, withBroker } from '../mqtt-helpers';

/** Authentication that waits for `release()`: the connection stays before its CONNACK meanwhile. */
function heldAuthentication(): { hooks: BrokerHooks; release: () => void } {
  let release = (): void => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const hooks: BrokerHooks = {
    authenticate: ({ clientId }) => (clientId.startsWith('flood') ? gate.then(() => true) : true),
    authorizePublish: () => true,
    authorizeSubscribe: () => true,
  };
  return { hooks, release };
}

const v5 = { protocolVersion: 5 as const };
const connectBytes = (clientId: string): Buffer =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId, clean: true, keepalive: 0 }, v5);
const publishBytes = (topic: string, payload: Buffer): Buffer =>
  mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 0, dup: false, retain: false }, v5);

/** A subscriber that sees the marker and nothing from the flood proves the held publishes were never routed. */
async function assertOnlyMarkerArrives(port: number, sub: RawClient): Promise<void> {
  const { client: good } = await RawClient.connect(port, 5, { clientId: 'good-publisher' });
  good.send({ cmd: 'publish', topic: 'flood/marker', payload: Buffer.from('marker'), qos: 0, dup: false, retain: false });
  const first = await sub.take('publish');
  assert.equal(first.cmd === 'publish' && first.topic, 'flood/marker', 'a held flood publish was routed');
  await good.destroy();
}

test('pre-CONNACK flood over TCP: the 1001st packet behind CONNECT gets CONNACK 0x97, nothing held is processed', async () => {
  const { hooks, release } = heldAuthentication();
  await withBroker(
    async (b, track) => {
      const sub = track(await RawClient.subscriber(b.port, 'watcher', 'flood/#'));
      const raw = track(await RawClient.open(b.port, 5));
      // One write, so one read: CONNECT and 1001 tiny publishes arrive before reading pauses.
      const flood = Array.from({ length: 1001 }, (_, i) => publishBytes('flood/tcp', Buffer.from(String(i))));
      raw.writeRaw(Buffer.concat([connectBytes('flood-tcp'), ...flood]));
      const connack = await raw.take('connack');
      assert.equal(connack.cmd === 'connack' && connack.reasonCode, 0x97);
      await raw.waitClosed();
      release();
      await assertOnlyMarkerArrives(b.port, sub);
    },
    {},
    { hooks },
  );
});

test('pre-CONNACK flood over WebSocket: one message with 1.2 MB of publishes behind CONNECT gets CONNACK 0x97', async () => {
  const { hooks, release } = heldAuthentication();
  const wsPort = await freePort();
  await withBroker(
    async (b, track) => {
      const sub = track(await RawClient.subscriber(b.port, 'watcher', 'flood/#'));
      const ws = new WebSocket(`ws://127.0.0.1:${b.wsPort}/mqtt`, 'mqtt');
      const received: mqttPacket.Packet[] = [];
      const parser = mqttPacket.parser(v5);
      parser.on('packet', (p) => received.push(p));
      ws.on('message', (data: Buffer) => parser.parse(data));
      const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      // Three 400 KB publishes in the same WebSocket message as the CONNECT: 1.2 MB held at once.
      const big = Buffer.alloc(400 * 1024, 1);
      ws.send(Buffer.concat([connectBytes('flood-ws'), publishBytes('flood/ws', big), publishBytes('flood/ws', big), publishBytes('flood/ws', big)]));
      await closed;
      assert.equal(received[0]?.cmd, 'connack', `got ${received.map((p) => p.cmd).join(',')}`);
      assert.equal((received[0] as mqttPacket.IConnackPacket).reasonCode, 0x97);
      release();
      await assertOnlyMarkerArrives(b.port, sub);
    },
    { wsPort },
    { hooks },
  );
});

test('below the bounds, packets behind CONNECT wait for the CONNACK and are then processed', async () => {
  const { hooks, release } = heldAuthentication();
  await withBroker(
    async (b, track) => {
      const sub = track(await RawClient.subscriber(b.port, 'watcher', 'flood/#'));
      const raw = track(await RawClient.open(b.port, 5));
      raw.writeRaw(Buffer.concat([connectBytes('flood-ok'), publishBytes('flood/ok', Buffer.from('held'))]));
      // Held, not routed, while authentication is pending: the marker from another client comes first.
      await assertOnlyMarkerArrives(b.port, sub);
      release();
      const connack = await raw.take('connack');
      assert.equal(connack.cmd === 'connack' && connack.reasonCode, 0);
      const held = await sub.take('publish');
      assert.equal(held.cmd === 'publish' && held.payload.toString(), 'held');
    },
    {},
    { hooks },
  );
});
