// Aedes (in-memory) behind the same CLI contract as iot-bridge, so the bench starts both the same way:
//   node dist/bench/peers/aedes-server.js start --port N [--data-dir DIR] [--durability strict|relaxed]
// Prints one line containing "listening" once it accepts connections; exits 0 on SIGTERM.
// --data-dir and --durability are accepted and ignored (Aedes here keeps everything in memory).
import * as net from 'node:net';
import { Aedes } from 'aedes';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const at = args.indexOf('--port');
  const port = at >= 0 ? Number(args[at + 1]) : 1883;
  if (!Number.isInteger(port) || port <= 0) throw new Error('usage: aedes-server start --port N');
  const broker = await Aedes.createBroker();
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    broker.handle(socket);
  });
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`aedes listening on 127.0.0.1:${port}\n`);
  });
  const stop = (): void => {
    server.close();
    broker.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e: unknown) => {
  process.stderr.write(`aedes-server: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
