// The LMDB environment that the worker processes share (`--processes N`) must keep every commit
// of one process while another process opens it, as a restarted worker does. With lmdb-js's
// default (overlappingSync) it did not: a counter read back one lower after about one open in
// ten (6 of 60 here, with the option put back). Real processes, real LMDB, the store's own
// environment options.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open } from 'lmdb';
import { lmdbEnvOptions } from '../../src/store/lmdb-store';
import { tempDir } from '../helpers';

const OPENS = 60;
// A process that opens the environment, commits once and exits, as a worker that starts does.
const OPENER = `
const { open } = require('lmdb');
const root = open(JSON.parse(process.env.LMDB_OPTIONS));
const other = root.openDB({ name: 'other' });
root.transaction(() => other.put('opener-' + process.pid, 1)).then(() => root.flushed).then(() => process.exit(0));
`;

function envOptions(dataDir: string): ReturnType<typeof lmdbEnvOptions> {
  return lmdbEnvOptions({ dataDir, durability: 'strict', mapSize: 1 << 30, sharedByProcesses: true });
}

test('a process opening the shared environment does not undo another process\'s commits', { timeout: 120_000 }, async () => {
  const dataDir = tempDir('iotb-shared-lmdb-');
  const root = open(envOptions(dataDir));
  const counters = root.openDB<number, string>({ name: 'counters' });
  let opened = 0;
  let openersDone = false;
  const startOpener = (): void => {
    if (opened === OPENS) {
      openersDone = true;
      return;
    }
    opened++;
    spawn(process.execPath, ['-e', OPENER], { cwd: __dirname, env: { ...process.env, LMDB_OPTIONS: JSON.stringify(envOptions(dataDir)) }, stdio: 'inherit' }).on('exit', startOpener);
  };
  startOpener();
  let expected = 0;
  const wentBack: string[] = [];
  const deadline = Date.now() + 100_000;
  while (!openersDone && Date.now() < deadline) {
    let read = -1;
    await root.transaction(() => {
      read = counters.get('n') ?? 0;
      void counters.put('n', read + 1);
    });
    await root.flushed;
    if (read !== expected) wentBack.push(`read ${read} after committing ${expected}`);
    expected = read + 1;
  }
  await root.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
  assert.ok(openersDone, `only ${opened} of ${OPENS} openers ran in time`);
  assert.ok(expected > OPENS, `the counter moved only ${expected} times while ${OPENS} processes opened the environment`);
  assert.deepEqual(wentBack, [], 'every commit kept');
});
