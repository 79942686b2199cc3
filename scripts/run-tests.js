#!/usr/bin/env node
// Runs every compiled test file under dist/test with node's built-in test runner.
// Usage: node scripts/run-tests.js [substring ...]   (only files whose path contains one of the substrings)
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..', 'dist', 'test');
function walk(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return walk(p);
    return e.name.endsWith('.test.js') ? [p] : [];
  });
}
const filters = process.argv.slice(2);
const files = walk(root)
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('no test files found under dist/test (did the build run?)');
  process.exit(1);
}
// RocketMQ: tests under rocketmq/, cluster/ or bridge/ need a real one. Start it once here (same module as
// `npm run rocketmq:start`, own work dir and ports), hand its address to the tests, stop it afterwards.
// Set ROCKETMQ_NAMESRV to use a RocketMQ you run yourself instead (restart tests are then skipped).
async function withRocketMQ(run) {
  const needsRocketMQ = files.some((f) => path.relative(root, f).split(path.sep).some((d) => d === 'rocketmq' || d === 'cluster' || d === 'bridge'));
  if (!needsRocketMQ || process.env.ROCKETMQ_NAMESRV) return run({});
  const local = require(path.join(__dirname, '..', 'dist', 'scripts', 'rocketmq', 'local-rocketmq.js'));
  const workDir = path.join(__dirname, '..', '.rocketmq', 'test');
  await local.stopLocalRocketMQ(workDir); // leftovers of an interrupted run (only PIDs recorded there)
  fs.rmSync(workDir, { recursive: true, force: true });
  // Preferred 29876/30911 (+1000 for the second broker); other free ports when another checkout
  // on this machine is using them.
  const { namesrvPort, brokerPort } =
    process.env.ROCKETMQ_TEST_NAMESRV_PORT && process.env.ROCKETMQ_TEST_BROKER_PORT
      ? { namesrvPort: Number(process.env.ROCKETMQ_TEST_NAMESRV_PORT), brokerPort: Number(process.env.ROCKETMQ_TEST_BROKER_PORT) }
      : await local.pickFreePorts(29876, 30911, 2);
  const stop = () => local.stopLocalRocketMQ(workDir, (line) => console.error(`rocketmq: ${line}`));
  const onSignal = () => stop().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const started = await local.startLocalRocketMQ({
      workDir,
      namesrvPort,
      brokers: [{ name: 'broker-a', port: brokerPort }],
      log: (line) => console.error(`rocketmq: ${line}`),
    });
    console.error(`rocketmq: test instance ready at ${started.namesrvAddr}`);
    return run({
      ROCKETMQ_NAMESRV: started.namesrvAddr,
      ROCKETMQ_TEST_WORK_DIR: workDir,
      ROCKETMQ_TEST_BROKER_PORT: String(brokerPort),
    });
  } finally {
    await stop();
  }
}

// The broker's and the guarantees' tests run a second time on the store of a worker of several
// processes (src/machine/), as the only worker: the core's path through a store that delivers.
const againOnWorkerStore = process.env.IOTB_TEST_STORE ? [] : files.filter((f) => ['broker', 'guarantees'].includes(path.relative(root, f).split(path.sep)[0]));

function runFiles(list, env) {
  // A test that hangs fails after 5 minutes with its name, instead of holding CI up to its limit.
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=300000', '--test-reporter=spec', ...list], {
    stdio: 'inherit',
    env: { ...process.env, ...env },
  });
  return r.status ?? 1;
}

withRocketMQ((env) => {
  const status = runFiles(files, env);
  if (againOnWorkerStore.length === 0) return status;
  console.error(`\n--- again on the store of one worker of several processes (IOTB_TEST_STORE=machine): ${againOnWorkerStore.length} files ---`);
  const again = runFiles(againOnWorkerStore, { IOTB_TEST_STORE: 'machine' });
  return status || again;
}).then(
  (status) => process.exit(status),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
