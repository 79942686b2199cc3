// $SYS topics in Mosquitto's naming: read with mosquitto_sub as a Mosquitto user would, counters
// that move with traffic, and a `#` subscription that does not see them (MQTT-4.7.2-1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collect, connect, endClient, runClient, skipWithout, startTestBroker } from '../helpers';

const skip = skipWithout(['mosquitto_sub']);

test('$SYS topics: mosquitto_sub reads the retained set; messages/received follows traffic; # does not match them', { skip }, async () => {
  const b = await startTestBroker({ sysInterval: 1 });
  try {
    const r = await runClient('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.port), '-t', '$SYS/broker/#', '-F', '%t\t%p', '-C', '19', '-W', '8']);
    assert.equal(r.status, 0, `got: ${r.stdout}`);
    const seen = new Map(r.stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('\t')), l.slice(l.indexOf('\t') + 1)]));
    assert.match(seen.get('$SYS/broker/version') ?? '', /^iot-bridge version \d+\.\d+\.\d+/);
    assert.match(seen.get('$SYS/broker/uptime') ?? '', /^\d+ seconds$/);
    for (const t of ['clients/connected', 'messages/received', 'subscriptions/count', 'retained messages/count', 'load/messages/received/1min', 'load/connections/15min']) {
      assert.ok(seen.has(`$SYS/broker/${t}`), `no $SYS/broker/${t} in ${[...seen.keys()].join(', ')}`);
    }

    const watcher = await connect(b.port, { clientId: 'sys-watcher', protocolVersion: 5 });
    const got = collect(watcher);
    await watcher.subscribeAsync('#', { qos: 0 });
    await watcher.subscribeAsync('$SYS/broker/messages/received', { qos: 0 });
    const pub = await connect(b.port, { clientId: 'sys-pub', protocolVersion: 5 });
    for (let i = 0; i < 5; i++) await pub.publishAsync('traffic/t', `m${i}`, { qos: 1 });
    // Bounded: updates come every second; wait for one that counts the five.
    let received = 0;
    for (let n = 1; n <= 20 && received < 5; n++) {
      const messages = await got.waitFor(n, 5000);
      const last = messages[n - 1]!;
      if (last.topic === '$SYS/broker/messages/received') received = Number(last.payload.toString());
    }
    assert.ok(received >= 5, `messages/received stayed at ${received}`);
    const fromHash = got.messages.filter((m) => m.topic.startsWith('$SYS') && m.topic !== '$SYS/broker/messages/received');
    assert.deepEqual(fromHash.map((m) => m.topic), [], '# matched $SYS topics');
    await endClient(pub, true);
    await endClient(watcher, true);
  } finally {
    await b.stop();
  }
});
