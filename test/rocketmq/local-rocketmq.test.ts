// Startup failures of the local RocketMQ scripts say why (checked without starting Java).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { LocalRocketMQError, checkJava, ensureJars, startLocalRocketMQ } from '../../scripts/rocketmq/local-rocketmq';

function withPath<T>(value: string, fn: () => T): T {
  const saved = process.env.PATH;
  process.env.PATH = value;
  try {
    return fn();
  } finally {
    process.env.PATH = saved;
  }
}

test('no Java on PATH: the error says to install a JDK', () => {
  withPath('', () => assert.throws(() => checkJava(), (err: unknown) => err instanceof LocalRocketMQError && /Java was not found/.test(err.message)));
});

test('no Maven on PATH and no cached jars: the error says Maven is needed', () => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'iotb-rmq-cache-'));
  try {
    withPath('', () =>
      assert.throws(() => ensureJars('5.3.3', cache, () => undefined), (err: unknown) => err instanceof LocalRocketMQError && /Maven \(mvn\) was not found/.test(err.message)),
    );
  } finally {
    fs.rmSync(cache, { recursive: true, force: true });
  }
});

test('a port in use: start refuses before launching anything and names the port', async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as net.AddressInfo).port;
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'iotb-rmq-work-'));
  try {
    await assert.rejects(
      startLocalRocketMQ({ workDir, namesrvPort: port, brokers: [], log: () => undefined }),
      (err: unknown) => err instanceof LocalRocketMQError && err.message.includes(`127.0.0.1:${port}`) && /already in use/.test(err.message),
    );
    assert.equal(fs.existsSync(path.join(workDir, 'pids.json')), false, 'nothing was started');
  } finally {
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    fs.rmSync(workDir, { recursive: true, force: true });
  }
});
