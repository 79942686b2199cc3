#!/usr/bin/env node
// `npm run fuzz [-- --seed N] [--decoder-cases N] [--network-cases N] [--minutes M]`: the fuzz tests
// of test/fuzz at scale, separate from `npm test`: by default a million decoder cases and up to
// 50 000 bad-input connections against a running broker while a good client publishes and
// receives, each part bounded by the time given (default 5 minutes each). Seeded: the seed is
// printed, and --seed repeats a run.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const minutes = Number(option('minutes', '5'));
const env = {
  ...process.env,
  FUZZ_DECODER_CASES: option('decoder-cases', '1000000'),
  FUZZ_NETWORK_CASES: option('network-cases', '50000'),
  FUZZ_TIME_MS: String(Math.round(minutes * 60_000)),
};
const seed = option('seed', process.env.FUZZ_SEED);
if (seed !== undefined) env.FUZZ_SEED = seed;
const file = path.join(__dirname, '..', 'dist', 'test', 'fuzz', 'fuzz.test.js');
// Each test may use its time budget, plus the set-up and the checks after it.
const timeout = Math.round(minutes * 60_000) + 120_000;
const r = spawnSync(process.execPath, ['--test', `--test-timeout=${timeout}`, '--test-reporter=spec', file], { stdio: 'inherit', env });
process.exit(r.status ?? 1);
