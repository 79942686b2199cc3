// The LMDB environment that the worker processes share (`--processes N`) must keep every commit
// of one process while another process opens it, as a restarted worker does. Two causes lost one:
// lmdb-js's overlappingSync (a commit flushed after the write lock was let go: about one open in ten
// undid one), and LMDB's own opening, which sets the shared last transaction id from the meta page it
// read (OpenLDAP ITS#9496, still in lmdb-js 3.5.6's copy: with overlappingSync off alone, 2 of 13
// looped runs of this test failed, one with a commit undone). The store's options and the opening turns of
// src/machine/open-turns.ts keep every one: here with real processes, real LMDB, the primary's
// OpenTurns, the store's write gate, and openers that ask for their turn as workers do.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LmdbStore, lmdbEnvOptions, type LmdbStoreOptions } from '../../src/store/lmdb-store';
import { OpenTurns, type TurnTaker } from '../../src/machine/open-turns';
import { silentLogger } from '../../src/broker/options';
import { tempDir } from '../helpers';

const OPENS = 60;
// A process that asks for its turn, opens the environment, commits once and exits, as a worker that starts does.
const OPENER = `
const { open } = require('lmdb');
const { openTurn, opened } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'src', 'machine', 'open-turns.js'))});
openTurn().then(() => {
  const root = open(JSON.parse(process.env.LMDB_OPTIONS));
  const other = root.openDB({ name: 'other' });
  opened({ holdWrites: async () => undefined, releaseWrites: () => undefined });
  return root.transaction(() => other.put('opener-' + process.pid, 1)).then(() => root.flushed);
}).then(() => process.exit(0));
`;

/** The test's own writer: a store of the shared environment whose write transactions bump a counter. */
class CounterStore extends LmdbStore {
  private readonly counters = this.root.openDB<number, string>({ name: 'counters' });

  /** Reads the counter and writes it plus one, in one write transaction; returns what it read. */
  async bump(): Promise<number> {
    let read = -1;
    await this.transact(() => {
      read = this.counters.get('n') ?? 0;
      void this.counters.put('n', read + 1);
    });
    await this.root.flushed;
    return read;
  }
}

test('a process opening the shared environment does not undo another process\'s commits', { timeout: 120_000 }, async () => {
  const dataDir = tempDir('iotb-shared-lmdb-');
  const options: LmdbStoreOptions = { dataDir, durability: 'strict', mapSize: 1 << 30, sharedByProcesses: true };
  const store = new CounterStore(options);
  const turns = new OpenTurns(silentLogger);
  // This process as a worker that has opened the environment: it holds its writes when asked.
  const self: TurnTaker = {
    send: (m) => {
      const message = m as { type: string; id?: number };
      if (message.type === 'iotb:hold-writes') void store.holdWrites().then(() => turns.onMessage(self, { type: 'iotb:writes-held', id: message.id }));
      else if (message.type === 'iotb:release-writes') store.releaseWrites();
    },
    isConnected: () => true,
    process: { pid: process.pid },
  };
  turns.onMessage(self, { type: 'iotb:opened' });

  let opened = 0;
  let openersDone = false;
  const startOpener = (): void => {
    if (opened === OPENS) {
      openersDone = true;
      return;
    }
    opened++;
    const child: ChildProcess = spawn(process.execPath, ['-e', OPENER], {
      cwd: __dirname,
      env: { ...process.env, LMDB_OPTIONS: JSON.stringify(lmdbEnvOptions(options)) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const taker: TurnTaker = { send: (m) => child.connected && child.send(m as object), isConnected: () => child.connected, process: { pid: child.pid } };
    child.on('message', (m) => turns.onMessage(taker, m));
    child.on('exit', () => {
      turns.onExit(taker);
      startOpener();
    });
  };
  startOpener();
  let expected = 0;
  const wentBack: string[] = [];
  const deadline = Date.now() + 100_000;
  while (!openersDone && Date.now() < deadline) {
    const read = await store.bump();
    if (read !== expected) wentBack.push(`read ${read} after committing ${expected}`);
    expected = read + 1;
  }
  await store.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
  assert.ok(openersDone, `only ${opened} of ${OPENS} openers ran in time`);
  assert.ok(expected > OPENS, `the counter moved only ${expected} times while ${OPENS} processes opened the environment`);
  assert.deepEqual(wentBack, [], 'every commit kept');
});
