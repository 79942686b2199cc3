import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { CLI, collect, connect, endClient, spawnBroker, tempDir } from '../helpers';

test('CLI contract: --port/--data-dir, a "listening" line, exit 0 on SIGTERM after a graceful shutdown', async () => {
  const broker = await spawnBroker(['--port', '0', '--data-dir', tempDir(), '--log-level', 'info']);
  let exitCode: number | null = -1;
  try {
    assert.match(broker.output.join(''), /listening/);
    const client = await connect(broker.port, { clientId: 'cli-test' });
    const got = collect(client);
    await client.subscribeAsync('cli/t', { qos: 1 });
    await client.publishAsync('cli/t', 'x', { qos: 1 });
    await got.waitFor(1);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    exitCode = await broker.terminate();
    await closed; // the broker closed the client on its way out
    await endClient(client, true);
  } finally {
    if (exitCode === -1) await broker.kill9();
  }
  assert.equal(exitCode, 0);
});

test('CLI refuses a bad option with exit code 2 and says which', () => {
  const r = spawnSync(process.execPath, [CLI, 'start', '--port', 'nope'], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /port/);
});
