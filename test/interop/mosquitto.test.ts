// Interoperability with the Eclipse Mosquitto command-line clients (Debian mosquitto-clients):
// mosquitto_pub / mosquitto_sub against the in-process broker, MQTT 5, 3.1.1 and 3.1, QoS 0/1/2,
// retained messages, wills, and MQTT 5 user properties (-D).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { startTestBroker } from '../helpers';
import { RawClient } from '../mqtt-helpers';
import { waitUntil } from '../guarantees/wait';

const installed = ['mosquitto_pub', 'mosquitto_sub'].every((bin) => !spawnSync(bin, ['--help']).error);
const missing = 'mosquitto_pub / mosquitto_sub not found: install mosquitto-clients (Debian/Ubuntu: apt-get install mosquitto-clients)';
// In CI (.ci/run installs them) a missing client is a failure, not a skip.
if (!installed && process.env.CI) throw new Error(missing);
const skip = installed ? false : missing;

interface Run {
  pid: number;
  stdout: string;
  stderr: string;
  /** Resolves with the exit code (or the signal name) once the process ended and its output is read; bounded by timeoutMs. */
  exit: Promise<number | string>;
  kill(signal: NodeJS.Signals): void;
}

/** Starts a mosquitto client; it is killed (by its PID) if it is still running after timeoutMs. */
function run(bin: 'mosquitto_pub' | 'mosquitto_sub', args: string[], timeoutMs = 10_000): Run {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const r: Run = {
    pid: child.pid ?? -1,
    stdout: '',
    stderr: '',
    exit: new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve(code ?? signal ?? 'unknown');
      });
    }),
    kill: (signal) => child.kill(signal),
  };
  child.stdout.on('data', (c: Buffer) => (r.stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (r.stderr += c.toString()));
  return r;
}

const VERSIONS = ['mqttv5', 'mqttv311', 'mqttv31'] as const;

test('interop: mosquitto_sub receives what mosquitto_pub sends, MQTT 5 / 3.1.1 / 3.1 × QoS 0 / 1 / 2', { skip }, async () => {
  const b = await startTestBroker();
  try {
    for (const version of VERSIONS) {
      for (const qos of ['0', '1', '2']) {
        const topic = `interop/${version}/${qos}`;
        const subId = `msub-${version}-${qos}`;
        const sub = run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.port), '-V', version, '-i', subId, '-q', qos, '-t', topic, '-C', '1', '-W', '10', '-F', '%q %r %t %p']);
        try {
          await waitUntil(() => b.broker.sessions.get(subId)?.subscriptions.has(topic) === true, `${subId} to subscribe`);
          const pub = run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(b.port), '-V', version, '-i', `mpub-${version}-${qos}`, '-q', qos, '-t', topic, '-m', `hello ${version} qos${qos}`]);
          assert.equal(await pub.exit, 0, `mosquitto_pub failed: ${pub.stderr}`);
          assert.equal(await sub.exit, 0, `mosquitto_sub failed: ${sub.stderr}`);
          assert.equal(sub.stdout, `${qos} 0 ${topic} hello ${version} qos${qos}\n`);
        } finally {
          sub.kill('SIGKILL');
          await sub.exit;
        }
      }
    }
    assert.equal(b.broker.stats.malformedPackets, 0);
  } finally {
    await b.stop();
  }
});

test('interop: retained message set with mosquitto_pub -r, received by a later mosquitto_sub, cleared with -r -n', { skip }, async () => {
  const b = await startTestBroker();
  try {
    for (const version of VERSIONS) {
      const topic = `interop/retained/${version}`;
      const pub = run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(b.port), '-V', version, '-q', '1', '-r', '-t', topic, '-m', `kept-${version}`]);
      assert.equal(await pub.exit, 0, pub.stderr);
      const sub = run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.port), '-V', version, '-q', '1', '-t', 'interop/retained/#', '-C', '1', '-W', '10', '-F', '%r %t %p']);
      assert.equal(await sub.exit, 0, sub.stderr);
      assert.equal(sub.stdout, `1 ${topic} kept-${version}\n`, 'the earlier versions cleared theirs');
      assert.equal(b.broker.retained.get(topic)?.payload.toString(), `kept-${version}`);
      const clear = run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(b.port), '-V', version, '-q', '1', '-r', '-n', '-t', topic]);
      assert.equal(await clear.exit, 0, clear.stderr);
      assert.equal(b.broker.retained.has(topic), false, 'an empty retained message clears it');
    }
  } finally {
    await b.stop();
  }
});

test('interop: the will of a killed mosquitto_sub (--will-topic) is published; a clean exit publishes none', { skip }, async () => {
  const b = await startTestBroker();
  const watch = await RawClient.connect(b.port, 5, { clientId: 'interop-watch' }).then((r) => r.client);
  try {
    await watch.subscribe('interop/will/#', 1);
    for (const version of VERSIONS) {
      const id = `mwill-${version}`;
      const args = ['-h', '127.0.0.1', '-p', String(b.port), '-V', version, '-i', id, '-t', 'interop/nothing', '--will-topic', `interop/will/${version}`, '--will-payload', `gone-${version}`, '--will-qos', '1'];
      const victim = run('mosquitto_sub', args);
      await waitUntil(() => b.broker.sessions.get(id)?.subscriptions.has('interop/nothing') === true, `${id} to subscribe`);
      victim.kill('SIGKILL'); // the process we started, by its PID: no DISCONNECT is sent
      await victim.exit;
      const will = await watch.take('publish', (p) => p.topic === `interop/will/${version}`);
      assert.equal(will.payload.toString(), `gone-${version}`);
      assert.equal(will.qos, 1);

      // -C 1: exits after one message, with DISCONNECT 0x00: no will. The message is a retained one,
      // which the broker sends after the SUBACK: a message that reaches mosquitto_sub before its
      // SUBACK (allowed, MQTT-3.8.4) can make it exit before its DISCONNECT is written (seen under
      // load), which is an ungraceful close and rightly publishes the will.
      const politeId = `${id}-polite`;
      const politeTopic = `interop/polite/${version}`;
      watch.publish(politeTopic, 'bye', 1, 901, { retain: true });
      await watch.take('puback', (p) => p.messageId === 901);
      const polite = run('mosquitto_sub', [...args.slice(0, 6), '-i', politeId, '-t', politeTopic, '-C', '1', '--will-topic', `interop/will/${version}-polite`, '--will-payload', 'never']);
      assert.equal(await polite.exit, 0, polite.stderr);
      watch.publish(politeTopic, '', 1, 902, { retain: true }); // clear it
      await watch.take('puback', (p) => p.messageId === 902);

      if (version === 'mqttv5') {
        // On its -W timeout mosquitto_sub (MQTT 5) sends DISCONNECT 0x04 "with will": the will goes out.
        const timeoutId = `${id}-timeout`;
        const timedOut = run('mosquitto_sub', [...args.slice(0, 6), '-i', timeoutId, '-t', 'interop/nothing', '-W', '1', '--will-topic', `interop/will/${version}-timeout`, '--will-payload', 'timeout']);
        await timedOut.exit;
        await watch.take('publish', (p) => p.topic === `interop/will/${version}-timeout`);
      }
    }
    const marker = await RawClient.connect(b.port, 4, { clientId: 'interop-marker' }).then((r) => r.client);
    marker.publish('interop/will/marker', 'marker', 1, 1);
    await watch.take('publish', (p) => p.topic === 'interop/will/marker');
    await marker.destroy();
    assert.deepEqual(
      watch.all('publish').map((p) => p.topic),
      ['interop/will/mqttv5', 'interop/will/mqttv5-timeout', 'interop/will/mqttv311', 'interop/will/mqttv31', 'interop/will/marker'],
    );
  } finally {
    await watch.destroy();
    await b.stop();
  }
});

test('interop: MQTT 5 user properties set with mosquitto_pub -D reach a subscriber, and mosquitto_sub prints them', { skip }, async () => {
  const b = await startTestBroker();
  const sub = await RawClient.connect(b.port, 5, { clientId: 'interop-props' }).then((r) => r.client);
  try {
    await sub.subscribe('interop/props', 1);
    const pub = run('mosquitto_pub', [
      '-h', '127.0.0.1', '-p', String(b.port), '-V', 'mqttv5', '-q', '1', '-t', 'interop/props', '-m', 'with-props',
      '-D', 'publish', 'user-property', 'site', 'berlin',
      '-D', 'publish', 'content-type', 'text/plain',
      '-D', 'connect', 'session-expiry-interval', '30',
    ]);
    assert.equal(await pub.exit, 0, pub.stderr);
    const p = await sub.take('publish');
    assert.equal(p.payload.toString(), 'with-props');
    assert.deepEqual({ ...p.properties?.userProperties }, { site: 'berlin' });
    assert.equal(p.properties?.contentType, 'text/plain');

    // The other way round: mosquitto_sub -V mqttv5 prints the properties it got (JSON output).
    const msub = run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.port), '-V', 'mqttv5', '-i', 'interop-msub', '-t', 'interop/props2', '-C', '1', '-W', '10', '-F', '%j']);
    try {
      await waitUntil(() => b.broker.sessions.get('interop-msub')?.subscriptions.has('interop/props2') === true, 'mosquitto_sub to subscribe');
      sub.publish('interop/props2', 'from-raw', 1, 5, { properties: { userProperties: { k: 'v' }, contentType: 'application/x' } });
      await sub.take('puback');
      assert.equal(await msub.exit, 0, msub.stderr);
      const json = JSON.parse(msub.stdout) as { topic: string; payload: string; properties?: { 'content-type'?: string; 'user-properties'?: Record<string, string> | { [k: string]: string }[] } };
      assert.equal(json.topic, 'interop/props2');
      assert.equal(json.payload, 'from-raw');
      assert.equal(json.properties?.['content-type'], 'application/x');
      assert.match(JSON.stringify(json.properties?.['user-properties']), /"k":"v"/);
    } finally {
      msub.kill('SIGKILL');
      await msub.exit;
    }
  } finally {
    await sub.destroy();
    await b.stop();
  }
});
