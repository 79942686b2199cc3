import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { ConfigError, loadConfig } from '../../src/ops/config';
import { connect, endClient, startTestBroker } from '../helpers';

// Paho interoperability test_subscribe_failure (client_test.py and client_test5.py) subscribes to
// "test/nosubscribe" and expects SUBACK 0x80. `denySubscribe` is the option that gives it.

/** Sends one SUBSCRIBE and resolves with the SUBACK's return/reason codes, whatever they are. */
function subackCodes(client: MqttClient, filters: string[]): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no SUBACK within 5 s')), 5000);
    client.once('packetreceive', function onPacket(packet) {
      if (packet.cmd !== 'suback') {
        client.once('packetreceive', onPacket);
        return;
      }
      clearTimeout(timer);
      resolve(packet.granted as number[]);
    });
    client.subscribe(filters, { qos: 2 }, () => undefined);
  });
}

for (const protocolVersion of [4, 5] as const) {
  test(`denySubscribe: matching filters get SUBACK 0x80, others are granted (MQTT ${protocolVersion === 5 ? '5' : '3.1.1'})`, async () => {
    const b = await startTestBroker({ denySubscribe: ['test/nosubscribe', 'secret/#'] });
    try {
      const client = await connect(b.port, { protocolVersion, clientId: `deny-${protocolVersion}` });
      const codes = await subackCodes(client, [
        'test/nosubscribe',
        'secret/a',
        'secret/+',
        '$share/g/secret/x',
        'test/allowed',
        '#',
      ]);
      assert.deepEqual(codes, [0x80, 0x80, 0x80, 0x80, 2, 2]);
      await endClient(client);
    } finally {
      await b.stop();
    }
  });
}

test('denySubscribe is empty by default: test/nosubscribe is granted', async () => {
  const b = await startTestBroker();
  try {
    const client = await connect(b.port, { protocolVersion: 5, clientId: 'deny-default' });
    assert.deepEqual(await subackCodes(client, ['test/nosubscribe']), [2]);
    await endClient(client);
  } finally {
    await b.stop();
  }
});

test('--deny-subscribe takes comma-separated topic filters and refuses invalid ones', () => {
  assert.deepEqual(loadConfig(['--deny-subscribe', 'test/nosubscribe,a/#'], {}).denySubscribe, ['test/nosubscribe', 'a/#']);
  assert.deepEqual(loadConfig([], { IOT_BRIDGE_DENY_SUBSCRIBE: 'x/+' }).denySubscribe, ['x/+']);
  assert.throws(() => loadConfig(['--deny-subscribe', 'a/#/b'], {}), (e: Error) => e instanceof ConfigError && /denySubscribe/.test(e.message));
});
