// Child of the store conformance crash test: commits batches of two enqueues (sessions a and b,
// same sequence) to an LMDB store, printing "committed N" once batch N is acknowledged, until it
// is killed. Bounded: it stops by itself after 100 000 batches.
import { LmdbStore } from '../../src/store/lmdb-store';
import type { StoreListener } from '../../src/store/types';

async function main(): Promise<void> {
  const dataDir = process.argv[2];
  if (!dataDir) throw new Error('usage: store-crash-child DATA_DIR');
  const store = new LmdbStore({ dataDir, durability: 'relaxed', mapSize: 64 * 1024 * 1024 });
  await store.load({} as StoreListener);
  const record = (clientId: string) => ({ clientId, protocolVersion: 5 as const, expiryInterval: 3600, subscriptions: [] });
  await store.commit([{ op: 'putSession', record: record('a') }, { op: 'putSession', record: record('b') }]);
  const payload = Buffer.alloc(2000, 1);
  for (let n = 1; n <= 100_000; n++) {
    const message = { topic: 't', payload, qos: 1 as const, retain: false, publisherId: 'p', createdAt: n };
    const entry = { seq: n, message, qos: 1 as const, subscriptionIds: [], retainAsPublished: false, state: 'queued' as const };
    await store.commit([
      { op: 'enqueue', clientId: 'a', entry },
      { op: 'enqueue', clientId: 'b', entry: { ...entry } },
    ]);
    process.stdout.write(`committed ${n}\n`);
  }
  await store.close();
}

main().catch((e: unknown) => {
  process.stderr.write(`store-crash-child: ${String(e)}\n`);
  process.exit(1);
});
