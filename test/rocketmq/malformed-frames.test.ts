// A fake server on a local port answers with malformed frames. The connection must close with a
// clear RemotingProtocolError, pending requests must fail, the process must not crash, and the
// next request must work over a fresh connection.
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, test } from 'node:test';
import { FLAG_RESPONSE, FrameDecoder, encodeCommand } from '../../src/rocketmq/codec';
import { RemotingConnection, DEFAULT_CONNECTION_OPTIONS } from '../../src/rocketmq/connection';
import { RemotingConnectionClosedError, RemotingProtocolError, RemotingTooManyRequestsError } from '../../src/rocketmq/errors';

type Reply = (socket: net.Socket, opaque: number) => void;

let server: net.Server;
let address = '';
let nextReply: Reply = () => undefined;
const sockets = new Set<net.Socket>();

function goodReply(socket: net.Socket, opaque: number): void {
  for (const part of encodeCommand({ code: 0, language: 0, version: 0, opaque, flag: FLAG_RESPONSE, extFields: { ok: 'yes' } })) socket.write(part);
}

before(async () => {
  server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const decoder = new FrameDecoder();
    socket.on('data', (data) => {
      for (const cmd of decoder.push(data)) nextReply(socket, cmd.opaque);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const a = server.address() as net.AddressInfo;
  address = `127.0.0.1:${a.port}`;
});

after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function frame(totalLength: number, rest: Buffer): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(totalLength);
  return Buffer.concat([b, rest]);
}

function int(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return b;
}

const cases: Array<[string, Reply, RegExp]> = [
  ['negative frame length', (s) => s.write(frame(-5, Buffer.alloc(8))), /frame length -5/],
  ['frame larger than the limit', (s) => s.write(frame(512 * 1024 * 1024, Buffer.alloc(8))), /exceeds the limit/],
  ['header length beyond the frame', (s) => s.write(frame(8, Buffer.concat([int(500), int(0)]))), /header length 500/],
  ['unknown serialize type', (s) => s.write(frame(4, int(9 << 24))), /unknown serialize type 9/],
  [
    'JSON header that is not JSON',
    (s) => {
      const json = Buffer.from('{"code":0,"opaque":');
      s.write(frame(4 + json.length, Buffer.concat([int(json.length), json])));
    },
    /not valid JSON/,
  ],
  [
    'ROCKETMQ header with a remark longer than the header',
    (s, opaque) => {
      const h = Buffer.alloc(21);
      h.writeInt16BE(0, 0);
      h.writeInt8(0, 2);
      h.writeInt16BE(0, 3);
      h.writeInt32BE(opaque, 5);
      h.writeInt32BE(1, 9);
      h.writeInt32BE(1000, 13); // remark length beyond the header
      s.write(frame(4 + h.length, Buffer.concat([int((1 << 24) | h.length), h])));
    },
    /truncated reading remark/,
  ],
];

for (const [name, reply, message] of cases) {
  test(`malformed frame: ${name} closes the connection with a clear error`, async () => {
    const errors: Error[] = [];
    const conn = new RemotingConnection(address, { ...DEFAULT_CONNECTION_OPTIONS, maxFrameBytes: 16 * 1024 * 1024, onConnectionError: (_a, e) => errors.push(e) });
    try {
      nextReply = reply;
      const first = conn.request({ code: 1, extFields: {} }, 5000);
      const second = conn.request({ code: 1, extFields: {} }, 5000);
      await assert.rejects(first, (err: unknown) => err instanceof RemotingProtocolError && message.test(err.message) && err.message.includes(address));
      // The other in-flight request fails too: its connection is gone.
      await assert.rejects(second, (err: unknown) => err instanceof RemotingProtocolError || err instanceof RemotingConnectionClosedError);
      assert.ok(errors.some((e) => e instanceof RemotingProtocolError), 'onConnectionError saw the protocol error');
      // The same RemotingConnection recovers on a new socket.
      nextReply = goodReply;
      const ok = await conn.request({ code: 1, extFields: {} }, 5000);
      assert.equal(ok.extFields.ok, 'yes');
    } finally {
      conn.close();
    }
  });
}

test('a server that closes mid-request fails the request with RemotingConnectionClosedError', async () => {
  const conn = new RemotingConnection(address);
  try {
    nextReply = (s) => s.destroy();
    await assert.rejects(conn.request({ code: 1, extFields: {} }, 5000), RemotingConnectionClosedError);
    nextReply = goodReply;
    assert.equal((await conn.request({ code: 1, extFields: {} }, 5000)).extFields.ok, 'yes');
  } finally {
    conn.close();
  }
});

test('a one-way request reaches the server with the one-way flag and expects no response', async () => {
  const conn = new RemotingConnection(address);
  try {
    const seen: Array<{ code: number; flag: number }> = [];
    const received = new Promise<void>((resolve) => {
      nextReply = () => undefined;
      server.once('connection', (socket: net.Socket) => {
        const decoder = new FrameDecoder();
        socket.on('data', (data) => {
          for (const cmd of decoder.push(data)) seen.push({ code: cmd.code, flag: cmd.flag });
          if (seen.length > 0) resolve();
        });
      });
    });
    await conn.oneway({ code: 15, extFields: { k: 'v' } });
    await received;
    assert.deepEqual(seen[0], { code: 15, flag: 2 });
    assert.equal(conn.inFlight, 0);
  } finally {
    conn.close();
  }
});

test('in-flight requests are bounded by count and by body bytes', async () => {
  nextReply = () => undefined; // the server never answers
  const byCount = new RemotingConnection(address, { ...DEFAULT_CONNECTION_OPTIONS, maxPendingRequests: 2 });
  const byBytes = new RemotingConnection(address, { ...DEFAULT_CONNECTION_OPTIONS, maxPendingBytes: 10 });
  const outstanding: Array<Promise<unknown>> = [];
  try {
    outstanding.push(byCount.request({ code: 1, extFields: {} }, 10_000), byCount.request({ code: 1, extFields: {} }, 10_000));
    await assert.rejects(byCount.request({ code: 1, extFields: {} }, 10_000), RemotingTooManyRequestsError);
    outstanding.push(byBytes.request({ code: 1, extFields: {}, body: Buffer.alloc(8) }, 10_000));
    await assert.rejects(byBytes.request({ code: 1, extFields: {}, body: Buffer.alloc(8) }, 10_000), RemotingTooManyRequestsError);
    assert.equal(byCount.inFlight, 2);
    assert.equal(byBytes.inFlight, 1);
  } finally {
    byCount.close();
    byBytes.close();
    // Closing fails what was in flight; nothing is left pending.
    const settled = await Promise.allSettled(outstanding);
    assert.ok(settled.every((r) => r.status === 'rejected'));
  }
});
