// The broker as a process of its own on an LMDB store that the test can make stall: lines on
// stdin, `hold` and `release`, close and open the store's gate (a disk that stops answering).
// The backpressure test measures this process's memory from outside (/proc). Not part of the product.
import * as readline from 'node:readline';
import { defaultConfig, type Config } from '../../src/ops/config';
import { startBroker } from '../../src/index';
import { LmdbStore } from '../../src/store/lmdb-store';
import { silentLogger } from '../../src/broker/options';
import { GatedStore } from '../guarantees/stores';

async function main(): Promise<void> {
  const dataDir = process.argv[2];
  if (!dataDir) throw new Error('usage: slow-store-broker.js DATA_DIR');
  // Session queues large enough for the whole test: what is measured is the publisher's side.
  const config: Config = { ...defaultConfig, host: '127.0.0.1', port: 0, maxQueuedMessages: 100_000, maxQueuedBytes: 1024 ** 3 };
  const store = new GatedStore(new LmdbStore({ dataDir, durability: 'strict', mapSize: 1024 ** 3 }));
  const running = await startBroker(config, silentLogger, { store });
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (line === 'hold') store.hold();
    else if (line === 'release') store.release();
    process.stdout.write(`ok ${line}\n`);
  });
  process.stdout.write(`slow-store broker listening on 127.0.0.1:${running.port}\n`);
  process.on('SIGTERM', () => void running.stop().then(() => process.exit(0)));
}

main().catch((e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});
