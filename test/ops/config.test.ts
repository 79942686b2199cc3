import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, defaultConfig, envName, flagName, loadConfig, optionSpecs } from '../../src/ops/config';
import { tempDir } from '../helpers';

test('every option is documented in docs/configuration.md with its flag and environment name', () => {
  const docs = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'docs', 'configuration.md'), 'utf8');
  for (const spec of optionSpecs) {
    assert.ok(docs.includes(`\`${spec.key}\``), `${spec.key} missing from docs/configuration.md`);
    assert.ok(docs.includes(flagName(spec.key)), `${flagName(spec.key)} missing`);
    assert.ok(docs.includes(envName(spec.key)), `${envName(spec.key)} missing`);
  }
  for (const key of Object.keys(defaultConfig)) {
    assert.ok(optionSpecs.some((s) => s.key === key), `${key} has a default but no spec`);
  }
});

test('file < environment < flags', () => {
  const dir = tempDir();
  const file = path.join(dir, 'c.json');
  fs.writeFileSync(file, JSON.stringify({ port: 1000, maxQueuedMessages: 7, durability: 'relaxed' }));
  const config = loadConfig(['--config', file, '--port', '3000'], { IOT_BRIDGE_PORT: '2000', IOT_BRIDGE_MAX_QUEUED_MESSAGES: '9' });
  assert.equal(config.port, 3000);
  assert.equal(config.maxQueuedMessages, 9);
  assert.equal(config.durability, 'relaxed');
  assert.equal(config.maxPacketSize, defaultConfig.maxPacketSize);
  assert.equal(loadConfig(['--data-dir=/x'], {}).dataDir, '/x');
});

test('invalid values and unknown options are refused with the option named', () => {
  assert.throws(() => loadConfig(['--port', 'abc'], {}), (e: Error) => e instanceof ConfigError && /port/.test(e.message));
  assert.throws(() => loadConfig(['--port', '70000'], {}), /between 0 and 65535/);
  assert.throws(() => loadConfig(['--durability', 'sometimes'], {}), /strict, relaxed/);
  assert.throws(() => loadConfig(['--no-such-thing', '1'], {}), /unknown option --no-such-thing/);
  assert.throws(() => loadConfig([], { IOT_BRIDGE_QUEUE_QOS0_OFFLINE: 'maybe' }), /IOT_BRIDGE_QUEUE_QOS0_OFFLINE/);
  assert.throws(() => loadConfig(['--tls-cert-username-field', 'san'], {}), /tlsCertUsernameField needs tlsCertAsUsername/);
  assert.throws(() => loadConfig(['--max-auth-data-size', '10'], {}), /maxAuthDataSize .* between 64 and 65535/);
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'bad.json'), '{"prot": 1}');
  assert.throws(() => loadConfig(['--config', path.join(dir, 'bad.json')], {}), /unknown option "prot"/);
});
