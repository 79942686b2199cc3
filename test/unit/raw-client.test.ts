// The raw test client fails a test on any malformed packet from the broker: checked here against
// a fake server that answers CONNECT with chosen bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { RawClient } from '../mqtt-helpers';

/** A server on 127.0.0.1 that writes `reply` once it has read anything, then optionally closes. */
async function fakeServer(reply: Buffer, close: boolean): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.once('data', () => (close ? s.end(reply) : s.write(reply)));
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    stop: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

const CONNACK = [0x20, 0x02, 0x00, 0x00]; // 3.1.1, accepted

test('RawClient: a well-formed CONNACK passes', async () => {
  const server = await fakeServer(Buffer.from(CONNACK), false);
  try {
    const { client, connack } = await RawClient.connect(server.port, 4, { clientId: 'ok' });
    assert.equal(connack.returnCode, 0);
    await client.destroy();
  } finally {
    await server.stop();
  }
});

for (const [what, bytes, close] of [
  ['a byte beyond the fields of a packet', [0x20, 0x03, 0x00, 0x00, 0x00], false],
  ['reserved flags set in a fixed header', [0x22, 0x02, 0x00, 0x00], false],
  ['a remaining length not minimally encoded', [0x20, 0x82, 0x00, 0x00, 0x00], false],
  ['a packet only a client sends', [...CONNACK, 0xc0, 0x00], false],
  ['a close in the middle of a packet', [...CONNACK, 0x30, 0x0a, 0x00], true],
] as const) {
  test(`RawClient fails on ${what}`, async () => {
    const server = await fakeServer(Buffer.from(bytes), close);
    try {
      const client = await RawClient.open(server.port, 4);
      client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'bad', clean: true, keepalive: 0 });
      // Whatever the test waits for next, it fails with the reason.
      await assert.rejects(client.take('suback'), /malformed input from the broker/);
      await assert.rejects(client.destroy(), /malformed input from the broker/);
    } finally {
      await server.stop();
    }
  });
}
