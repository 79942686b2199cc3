// The embedded store's size limit (lmdbMapSize): past it, new messages are refused — MQTT 5
// PUBACK 0x97 (Quota exceeded), 3.1.1 a closed connection so that nothing unstored is
// acknowledged — while reads go on: a subscriber still gets and acknowledges every message that
// was acknowledged to its publisher, which drains the store, and publishing works again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, withBroker } from '../mqtt-helpers';

const PAYLOAD = Buffer.alloc(16 * 1024, 7);
const MAX_PUBLISHES = 2000; // 32 MB: far past the 1 MiB limit even with the size check's 100 ms slack

test('store full: QoS 1 refused with 0x97 (3.1.1: connection closed), stored messages still delivered, writes resume once drained', async () => {
  await withBroker(
    async (b, track) => {
      // A persistent subscriber, offline while the publisher fills its queue.
      let { client: sub } = await RawClient.connect(b.port, 5, { clientId: 'drainer', clean: false, properties: { sessionExpiryInterval: 3600 } });
      sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'full/#', qos: 1 }] });
      await sub.take('suback');
      await sub.destroy();
      await sub.waitClosed();

      const { client: pub } = await RawClient.connect(b.port, 5, { clientId: 'filler' });
      track(pub);
      let acked = 0;
      let refusal: number | undefined;
      for (let id = 1; id <= MAX_PUBLISHES && refusal === undefined; id++) {
        pub.send({ cmd: 'publish', topic: 'full/x', payload: PAYLOAD, qos: 1, messageId: id, dup: false, retain: false, properties: { userProperties: { n: String(id) } } });
        const ack = await pub.take('puback');
        assert.equal(ack.cmd === 'puback' && ack.messageId, id);
        const code = ack.cmd === 'puback' ? (ack.reasonCode ?? 0) : -1;
        if (code === 0) acked++;
        else refusal = code;
      }
      assert.equal(refusal, 0x97, `no refusal after ${acked} acknowledged publishes`);
      assert.ok(acked > 10, `only ${acked} publishes fit in 1 MiB`);

      // MQTT 3.1.1 has no refusal code for PUBLISH: the broker closes instead of acknowledging.
      const { client: old } = await RawClient.connect(b.port, 4, { clientId: 'filler-311' });
      track(old);
      old.send({ cmd: 'publish', topic: 'full/y', payload: PAYLOAD, qos: 1, messageId: 1, dup: false, retain: false });
      await old.waitClosed();
      assert.equal(old.received.filter((p) => p.cmd === 'puback').length, 0, 'a 3.1.1 publish was acknowledged while the store was full');

      // Reads go on: every acknowledged message reaches the subscriber, in order, and its acks drain the store.
      ({ client: sub } = await RawClient.connect(b.port, 5, { clientId: 'drainer', clean: false, properties: { sessionExpiryInterval: 3600 } }));
      track(sub);
      for (let n = 1; n <= acked; n++) {
        const p = await sub.take('publish');
        assert.ok(p.cmd === 'publish');
        assert.equal(p.properties?.userProperties?.n, String(n));
        sub.send({ cmd: 'puback', messageId: p.messageId });
      }

      // Drained: publishing is accepted again (the size is re-read at most every 100 ms; bounded wait).
      let accepted = false;
      for (let attempt = 0, id = 30000; attempt < 50 && !accepted; attempt++, id++) {
        pub.send({ cmd: 'publish', topic: 'full/z', payload: Buffer.from('after'), qos: 1, messageId: id, dup: false, retain: false });
        const ack = await pub.take('puback');
        accepted = ack.cmd === 'puback' && (ack.reasonCode ?? 0) === 0;
        if (!accepted) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(accepted, 'still refused after the subscriber drained the store');
      const after = await sub.take('publish');
      assert.equal(after.cmd === 'publish' && after.payload.toString(), 'after');
    },
    { lmdbMapSize: 1024 * 1024 },
  );
});
