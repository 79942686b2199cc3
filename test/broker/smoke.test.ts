import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collect, connect, endClient, startTestBroker } from '../helpers';

test('QoS 1 round trip through an in-process broker (mqtt.js, MQTT 5 and 3.1.1)', async () => {
  const b = await startTestBroker();
  try {
    const sub = await connect(b.port, { protocolVersion: 5, clientId: 'sub' });
    const got = collect(sub);
    await sub.subscribeAsync('s/+', { qos: 1 });
    const pub = await connect(b.port, { protocolVersion: 4, clientId: 'pub' });
    await pub.publishAsync('s/1', 'one', { qos: 1 });
    const [m] = await got.waitFor(1);
    assert.equal(m.topic, 's/1');
    assert.equal(m.payload.toString(), 'one');
    assert.equal(m.packet.qos, 1);
    await endClient(pub);
    await endClient(sub);
  } finally {
    await b.stop();
  }
});
