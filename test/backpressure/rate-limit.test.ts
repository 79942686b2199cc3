// maxPublishRate: a client publishing faster than allowed is disconnected (MQTT 5 0x96), counted,
// and the broker goes on serving clients within the rate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqttPacket from 'mqtt-packet';
import { RawClient, withBroker } from '../mqtt-helpers';

test('publish rate limit: a client past maxPublishRate is disconnected with 0x96 (3.1.1: closed); others go on', async () => {
  await withBroker(
    async (b, track) => {
      for (const protocolVersion of [5, 4] as const) {
        const { client: fast } = await RawClient.connect(b.port, protocolVersion, { clientId: `rl-fast-${protocolVersion}` });
        track(fast);
        // 50 allowed at once (a second's worth), so 200 in one write must trip it.
        fast.writeRaw(Buffer.concat(Array.from({ length: 200 }, (_, i) => mqttPacket.generate({ cmd: 'publish', topic: 'rl/x', payload: Buffer.from(String(i)), qos: 0, dup: false, retain: false }, { protocolVersion }))));
        await fast.waitClosed();
        const disconnect = fast.received.find((p) => p.cmd === 'disconnect');
        if (protocolVersion === 5) assert.equal(disconnect?.cmd === 'disconnect' && disconnect.reasonCode, 0x96);
        else assert.equal(disconnect, undefined, 'MQTT 3.1.1 has no server DISCONNECT');
      }
      assert.equal(b.broker.stats.rateLimited, 2);
      // A client within the rate is served.
      const { client: slow } = await RawClient.connect(b.port, 5, { clientId: 'rl-slow' });
      track(slow);
      slow.send({ cmd: 'publish', topic: 'rl/ok', payload: Buffer.from('within'), qos: 1, messageId: 1, dup: false, retain: false });
      const ack = await slow.take('puback');
      assert.equal(ack.cmd === 'puback' && (ack.reasonCode ?? 0), 0);
    },
    { maxPublishRate: 50 },
  );
});
