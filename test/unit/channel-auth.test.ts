// The channel's side of MQTT 5 enhanced authentication, driven with bytes and an injected clock
// (no sockets, no timers): reading goes on while an exchange waits for the client and stops once
// the client is authenticated, and the deadline is the channel's clock tick. The hook is the real
// FileAuth on a real password file; the transport is the harness's fake.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { FileAuth } from '../../src/auth/file-auth';
import { updatePasswordFile } from '../../src/auth/password-file';
import { Broker } from '../../src/broker/broker';
import { Channel } from '../../src/broker/channel';
import { type BrokerHooks, defaultBrokerOptions, silentLogger } from '../../src/broker/options';
import type { Packet } from '../../src/protocol/packets';
import { MemoryStore } from '../../src/store/memory-store';
import { defaultConfig } from '../../src/ops/config';
import { tempDir } from '../helpers';
import { TestScramClient } from '../scram-test-client';
import { FakeTransport, enc, settle } from './harness';

async function withAuthBroker(fn: (broker: Broker) => Promise<void>, hooks?: BrokerHooks): Promise<void> {
  const passwordFile = path.join(tempDir(), 'passwords');
  fs.writeFileSync(passwordFile, updatePasswordFile('', 'dev', 'dev-pw', { scram: true }));
  const auth = hooks ?? new FileAuth({ ...defaultConfig, passwordFile, authFailuresPerMinute: 0 }, silentLogger);
  const broker = new Broker(new MemoryStore(), { ...defaultBrokerOptions, connectTimeoutMs: 5000 }, auth);
  await broker.start();
  try {
    await fn(broker);
  } finally {
    await broker.stop();
  }
}

const connect = (clientId: string, data: string, method = 'SCRAM-SHA-512'): Buffer =>
  enc({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 0, clientId, properties: { authenticationMethod: method, authenticationData: Buffer.from(data) } }, 5);

const last = (t: FakeTransport): Packet => t.packets(5).at(-1)!;

test('channel: reading goes on while an exchange waits for the client, stops after its last AUTH until the CONNACK', async () => {
  await withAuthBroker(async (broker) => {
    const t = new FakeTransport();
    const ch = new Channel(broker, t, 0);
    const scram = new TestScramClient('SCRAM-SHA-512', 'dev');
    ch.receive(connect('c1', scram.clientFirst), 0);
    const serverFirst = last(t);
    assert.ok(serverFirst.cmd === 'auth' && serverFirst.reasonCode === 0x18);
    assert.equal(t.paused, false, 'the broker stopped reading while it waits for the client');
    assert.equal(ch.state, 'authenticating');
    const final = scram.clientFinal(serverFirst.properties?.authenticationData?.toString() ?? '', 'dev-pw');
    ch.receive(enc({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'SCRAM-SHA-512', authenticationData: Buffer.from(final) } }, 5), 10);
    assert.equal(t.paused, true, 'reading did not stop between the last AUTH and the CONNACK');
    await settle();
    const connack = last(t);
    assert.ok(connack.cmd === 'connack' && connack.reasonCode === 0);
    assert.equal(scram.serverVerified(connack.properties?.authenticationData?.toString() ?? ''), true);
    assert.equal(ch.state, 'connected');
    assert.equal(ch.username, 'dev');
    assert.equal(t.paused, false);
  });
});

test('channel: the exchange deadline is the clock tick (connectTimeoutMs from the connection): CONNACK 0x87, then closed', async () => {
  await withAuthBroker(async (broker) => {
    const t = new FakeTransport();
    const ch = new Channel(broker, t, 1_000);
    ch.receive(connect('c2', new TestScramClient('SCRAM-SHA-512', 'dev').clientFirst), 1_000);
    ch.tick(6_000);
    assert.equal(t.closed, false, 'closed before the deadline');
    ch.tick(6_001);
    const connack = last(t);
    assert.ok(connack.cmd === 'connack' && connack.reasonCode === 0x87);
    assert.equal(t.closed, true);
    assert.equal(ch.state, 'closed');
  });
});

test('channel: an enhancedAuth hook that throws refuses that client with 0x80 and nothing escapes', async () => {
  const throwing: BrokerHooks = {
    authenticate: () => true,
    authorizePublish: () => true,
    authorizeSubscribe: () => true,
    enhancedAuth: {
      supports: () => true,
      start: () => {
        throw new Error('bug in a hook');
      },
    },
  };
  await withAuthBroker(async (broker) => {
    const t = new FakeTransport();
    const ch = new Channel(broker, t, 0);
    ch.receive(connect('c3', 'anything', 'X-TOKEN'), 0);
    const connack = last(t);
    assert.ok(connack.cmd === 'connack' && connack.reasonCode === 0x80);
    assert.equal(t.closed, true);
  }, throwing);
});
