// The floor for memory per connection: a bare Node.js TCP server that answers CONNECT with a
// CONNACK and nothing else, behind the iot-bridge CLI contract (`start --port N`, prints
// "listening", exits 0 on SIGTERM). The bench runs it in the connect case only, to compare
// iot-bridge's RSS per idle connection with what Node's own socket costs on the same machine.
import * as net from 'node:net';

const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);

function main(): void {
  const args = process.argv.slice(2);
  const at = args.indexOf('--port');
  const port = at >= 0 ? Number(args[at + 1]) : 1883;
  if (!Number.isInteger(port) || port <= 0) throw new Error('usage: bare-node-server start --port N');
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('data', (chunk: Buffer) => {
      if (chunk[0] !== undefined && chunk[0] >> 4 === 1) socket.write(CONNACK); // CONNECT
    });
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write(`bare node server listening on 127.0.0.1:${port}\n`));
  process.on('SIGTERM', () => {
    server.close();
    for (const s of sockets) s.destroy();
    process.exit(0);
  });
}

main();
