import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type IConnackPacket } from 'mqtt';
import { endClient, startTestBroker } from '../helpers';

// Paho interoperability test_server_keep_alive (client_test5.py) connects with keep alive 120
// and expects CONNACK Server Keep Alive 60: the broker runs with --max-keep-alive 60 for it.

function connack(port: number, keepalive: number): Promise<{ client: mqtt.MqttClient; connack: IConnackPacket }> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({ host: '127.0.0.1', port, protocolVersion: 5, keepalive, reconnectPeriod: 0, connectTimeout: 5000 });
    client.once('connect', (packet) => resolve({ client, connack: packet }));
    client.once('error', (e) => {
      client.end(true);
      reject(e);
    });
  });
}

test('maxKeepAlive 60: a 120 s keep alive request gets Server Keep Alive 60, a 30 s one is kept', async () => {
  const b = await startTestBroker({ maxKeepAlive: 60 });
  try {
    const long = await connack(b.port, 120);
    assert.equal(long.connack.properties?.serverKeepAlive, 60);
    await endClient(long.client);
    const short = await connack(b.port, 30);
    assert.equal(short.connack.properties?.serverKeepAlive, undefined);
    await endClient(short.client);
  } finally {
    await b.stop();
  }
});

test('maxKeepAlive 0 (the default): no Server Keep Alive, the requested keep alive stands', async () => {
  const b = await startTestBroker();
  try {
    const { client, connack: ack } = await connack(b.port, 120);
    assert.equal(ack.properties?.serverKeepAlive, undefined);
    await endClient(client);
  } finally {
    await b.stop();
  }
});
