// The broker's clock reaches the sockets: with a clock the test moves, will delay and keep alive
// act on real connections when the test says, whatever the wall clock does. The timers
// themselves are checked to the millisecond in test/unit/mqtt-time.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IDisconnectPacket } from 'mqtt-packet';
import { waitUntil } from '../guarantees/wait';
import { collect, connect } from '../helpers';
import { ManualClock } from '../manual-clock';
import { withBroker } from '../mqtt-helpers';

test('will delay over real sockets: no will while the clock stands still, the will once it passes the delay', async () => {
  const clock = new ManualClock();
  await withBroker(async (b, track) => {
    const watcher = track(await connect(b.port, { protocolVersion: 5, clientId: 'clock-watch' }));
    const seen = collect(watcher);
    await watcher.subscribeAsync('clk/#', { qos: 1 });
    const dying = await connect(b.port, {
      protocolVersion: 5,
      clientId: 'clock-dying',
      properties: { sessionExpiryInterval: 600 },
      will: { topic: 'clk/will', payload: Buffer.from('gone'), qos: 1, retain: false, properties: { willDelayInterval: 60 } },
    });
    dying.stream.destroy();
    await waitUntil(() => b.broker.sessions.get('clock-dying')?.online === false, 'the broker to see the connection cut');
    clock.advance(59_999);
    // Anything the will timer sent would be queued before this marker, which the watcher gets in order.
    await watcher.publishAsync('clk/marker', 'm', { qos: 1 });
    await seen.waitFor(1);
    assert.deepEqual(seen.messages.map((m) => m.topic), ['clk/marker'], 'no will 1 ms before the delay ends');
    clock.advance(1);
    await seen.waitFor(2);
    assert.deepEqual(seen.messages.map((m) => m.topic), ['clk/marker', 'clk/will']);
    dying.end(true);
  }, {}, { clock });
});

test('keep alive over a real socket: the broker closes a silent client when its clock, not the wall clock, passes 1.5 × keep alive (MQTT 5: DISCONNECT 0x8D)', async () => {
  const clock = new ManualClock();
  await withBroker(async (b, track) => {
    // mqtt.js pings on the wall clock: with 600 s it stays silent for the whole test.
    const client = track(await connect(b.port, { protocolVersion: 5, clientId: 'clock-ka', keepalive: 600 }));
    let reason: number | undefined;
    client.on('disconnect', (p: IDisconnectPacket) => (reason = p.reasonCode));
    let closed = false;
    client.once('close', () => (closed = true));
    // The listener's once-a-second tick reads the broker clock; on the wall clock this would take 15 minutes.
    clock.advance(900_001);
    await waitUntil(() => closed, 'the keep-alive close');
    assert.equal(reason, 0x8d);
  }, {}, { clock });
});
