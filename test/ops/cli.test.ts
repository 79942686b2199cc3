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

test('`npm start` passes SIGTERM to the broker: graceful shutdown and exit 0, no broker left running', async () => {
  const { spawn } = await import('node:child_process');
  const path = await import('node:path');
  const root = path.join(__dirname, '..', '..', '..');
  // npm-cli.js next to the running node; the start script must exec node so signals reach it.
  const npm = spawn('npm', ['run', '--silent', 'start', '--', '--port', '0', '--data-dir', tempDir()], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  let out = '';
  npm.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  npm.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 20000;
  while (!/listening on [^:]+:(\d+)/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const port = Number(/listening on [^:]+:(\d+)/.exec(out)?.[1]);
  assert.ok(port > 0, `broker listening:\n${out}`);
  const brokerPid = Number(/"pid":(\d+)/.exec(out)?.[1]);
  npm.kill('SIGTERM');
  const code = await exited;
  // Nothing may still accept connections on that port.
  const net = await import('node:net');
  const refused = await new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
  if (!refused && brokerPid > 0) process.kill(brokerPid, 'SIGKILL'); // the broker npm started, orphaned: do not leave it
  npm.stdout!.destroy();
  npm.stderr!.destroy();
  assert.equal(refused, true, 'the broker process is gone');
  assert.equal(code, 0, out);
  assert.match(out, /"msg":"stopped"/);
});

test('the broker still shuts down on SIGTERM when nobody reads its stdout any more', async () => {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [CLI, 'start', '--port', '0', '--data-dir', tempDir()], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  const deadline = Date.now() + 15000;
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  while (!/listening/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.match(out, /listening/);
  child.stdout!.destroy(); // the reader goes away: further log lines hit a closed pipe
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
  const code = await exited;
  clearTimeout(timer);
  assert.equal(code, 0);
});
