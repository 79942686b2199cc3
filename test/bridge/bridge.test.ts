// The bridge (docs/bridge.md), end to end: MQTT clients on real cluster nodes, and a real RocketMQ
// application on the official Java client (test/bridge/java) on the other side.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_ROCKETMQ_VERSION, defaultCacheDir } from '../../scripts/rocketmq/local-rocketmq';
import http from 'node:http';
import { RawClient } from '../mqtt-helpers';
import { collect, connect, endClient, sleep } from '../helpers';
import { namesrvAddr } from '../rocketmq/helpers';
import { TestCluster, type ClusterNode } from '../cluster/nodes';
import { buildJavaApp, repoRoot, startConsumer, startProducer, type ConsumedMessage, type JavaConsumer, type JavaProducer } from './java-app';

const cluster = new TestCluster();
const uplink = `${cluster.name}_up`;
const downlink = `${cluster.name}_downlink`;
const MAX_PACKET = 16_384;
cluster.extraArgs.push('--bridge-uplink', `br/#=${uplink},req/#=${uplink}:request`, '--node-lease-ms', '2000', '--max-packet-size', String(MAX_PACKET));
let a: ClusterNode;
let b: ClusterNode;
let service: JavaConsumer;
let producer: JavaProducer;

before(async () => {
  buildJavaApp();
  [a, b] = await cluster.startAll('br-a', 'br-b');
  [service, producer] = await Promise.all([
    startConsumer({ namesrv: namesrvAddr(), topic: uplink, group: `${cluster.name}_svc` }),
    startProducer({ namesrv: namesrvAddr() }),
  ]);
});

after(async () => {
  if (process.env.DUMP_CLUSTER_LOGS) console.log(cluster.logs());
  await Promise.all([service?.stop(), producer?.stop()]);
  await cluster.stop();
});

const mqttTopic = (m: ConsumedMessage): string | undefined => m.properties.mqtt_topic;

test('bridge uplink: QoS 0, 1 and 2 from mqtt.js and mosquitto_pub reach a Java consumer with every property, in order per device', async () => {
  const device = await connect(a.port, { clientId: 'br-dev-1', protocolVersion: 5 });
  try {
    for (let i = 0; i < 20; i++) await device.publishAsync('br/dev-1/seq', String(i), { qos: 1 });
    for (let i = 0; i < 5; i++) await device.publishAsync('br/dev-1/q2', String(i), { qos: 2 });
    await device.publishAsync('br/dev-1/q0', 'zero', { qos: 0 });
    await device.publishAsync('br/dev-1/full', 'with properties', {
      qos: 1,
      retain: true,
      properties: {
        contentType: 'text/plain',
        responseTopic: 'res/dev-1',
        correlationData: Buffer.from('c-1'),
        payloadFormatIndicator: true,
        messageExpiryInterval: 3600,
        userProperties: { site: 'lab', tag: ['x', 'y'] },
      },
    });
    await device.publishAsync('other/not-bridged', 'nobody', { qos: 1 }); // no route, no subscriber
  } finally {
    await endClient(device);
  }
  for (const qos of ['0', '1', '2']) await mosquittoPub(b.port, ['-i', 'br-mosq', '-q', qos, '-t', `br/mosq/q${qos}`, '-m', `mosq-${qos}`]);

  const got = await service.waitFor(30, 30_000, (m) => mqttTopic(m)?.startsWith('br/') === true);
  const seq = got.filter((m) => mqttTopic(m) === 'br/dev-1/seq');
  assert.deepEqual(seq.map((m) => m.body.toString()), Array.from({ length: 20 }, (_, i) => String(i)), 'QoS 1 in order');
  assert.deepEqual(got.filter((m) => mqttTopic(m) === 'br/dev-1/q2').map((m) => m.body.toString()), ['0', '1', '2', '3', '4'], 'QoS 2 in order, once');
  for (const m of [...seq, ...got.filter((x) => mqttTopic(x) === 'br/dev-1/q2')]) {
    assert.equal(m.topic, uplink);
    assert.equal(m.tags, 'br');
    assert.equal(m.keys, 'br-dev-1');
    assert.equal(m.properties.mqtt_client, 'br-dev-1');
    assert.equal(m.properties.mqtt_retain, '0');
  }
  assert.equal(new Set(seq.map((m) => m.queueId)).size, 1, 'one device, one queue');
  assert.equal(got.find((m) => mqttTopic(m) === 'br/dev-1/q0')?.properties.mqtt_qos, '0');

  const full = got.find((m) => mqttTopic(m) === 'br/dev-1/full');
  assert.ok(full, 'the message with MQTT 5 properties');
  assert.equal(full.body.toString(), 'with properties');
  assert.equal(full.properties.mqtt_qos, '1');
  assert.equal(full.properties.mqtt_retain, '1');
  assert.equal(full.properties.mqtt_content_type, 'text/plain');
  assert.equal(full.properties.mqtt_response_topic, 'res/dev-1');
  assert.equal(Buffer.from(full.properties.mqtt_correlation_data ?? '', 'base64').toString(), 'c-1');
  assert.equal(full.properties.mqtt_payload_format, '1');
  assert.deepEqual(JSON.parse(full.properties.mqtt_user_props ?? 'null'), [['site', 'lab'], ['tag', 'x'], ['tag', 'y']]);
  const expiresIn = Number(full.properties.mqtt_expiry_at) - Number(full.properties.mqtt_created);
  assert.ok(Math.abs(expiresIn - 3_600_000) < 1000, `expiry ${expiresIn} ms after creation`);

  for (const qos of ['0', '1', '2']) {
    const m = got.find((x) => mqttTopic(x) === `br/mosq/q${qos}`);
    assert.ok(m, `mosquitto_pub QoS ${qos}`);
    assert.equal(m.body.toString(), `mosq-${qos}`);
    assert.equal(m.properties.mqtt_qos, qos);
    assert.equal(m.properties.mqtt_client, 'br-mosq');
  }
  assert.equal(service.messages.filter((m) => mqttTopic(m) === 'other/not-bridged').length, 0, 'a topic no route matches is not in the uplink topic');
  assert.equal(got.length, 30, 'nothing twice');
});

test('bridge downlink: a Java producer reaches online and offline persistent sessions at QoS 0, 1 and 2', async () => {
  const online = await connect(a.port, { clientId: 'dl-on', protocolVersion: 5 });
  const onlineGot = collect(online);
  await online.subscribeAsync('dl/on/#', { qos: 2 });
  const offlineOptions = { clientId: 'dl-off', clean: false, protocolVersion: 5 as const, properties: { sessionExpiryInterval: 300 } };
  const first = await connect(b.port, offlineOptions);
  await first.subscribeAsync('dl/off/#', { qos: 2 });
  await endClient(first);
  try {
    for (const qos of [0, 1, 2]) {
      await producer.sendOk({ topic: downlink, body: `on-${qos}`, properties: { mqtt_topic: `dl/on/q${qos}`, mqtt_qos: String(qos) } });
    }
    for (let i = 0; i < 10; i++) {
      await producer.sendOk({ topic: downlink, body: `off-${i}`, properties: { mqtt_topic: 'dl/off/x', mqtt_qos: String(1 + (i % 2)), mqtt_content_type: 'text/plain' } });
    }
    const on = await onlineGot.waitFor(3, 30_000);
    assert.deepEqual(on.map((m) => [m.topic, m.payload.toString(), m.packet.qos]).sort(), [
      ['dl/on/q0', 'on-0', 0],
      ['dl/on/q1', 'on-1', 1],
      ['dl/on/q2', 'on-2', 2],
    ]);
    let received: ReturnType<typeof collect> | undefined;
    const again = await connect(a.port, offlineOptions, (client) => (received = collect(client)));
    try {
      const off = await received!.waitFor(10, 30_000);
      assert.deepEqual(
        off.map((m) => m.payload.toString()).sort(),
        Array.from({ length: 10 }, (_, i) => `off-${i}`).sort(),
      );
      for (const m of off) assert.equal(m.packet.qos, 1 + (Number(m.payload.toString().slice(4)) % 2), 'the QoS it was sent with');
      assert.equal(off[0]?.packet.properties?.contentType, 'text/plain');
      await sleep(300);
      assert.equal(received!.messages.length, 10, 'each once');
    } finally {
      await endClient(again, true);
    }
  } finally {
    await endClient(online, true);
  }
});

test('bridge downlink: QoS 2 exactly once across a reconnect to another node (only PUBREL after PUBREC)', async () => {
  const props = { sessionExpiryInterval: 300 };
  const { client: first } = await RawClient.connect(b.port, 5, { clientId: 'dl-x2', clean: false, properties: props });
  await first.subscribe('dl/x2', 2);
  await producer.sendOk({ topic: downlink, body: 'once', properties: { mqtt_topic: 'dl/x2', mqtt_qos: '2' } });
  const publish = await first.take('publish', () => true, 30_000);
  assert.equal(publish.qos, 2);
  first.send({ cmd: 'pubrec', messageId: publish.messageId });
  await first.take('pubrel', (p) => p.messageId === publish.messageId, 10_000); // PUBREC is stored before PUBREL is sent
  await first.destroy();
  const { client: second, connack } = await RawClient.connect(a.port, 5, { clientId: 'dl-x2', clean: false, properties: props });
  try {
    assert.equal(connack.sessionPresent, true);
    await second.take('pubrel', (p) => p.messageId === publish.messageId, 10_000);
    second.send({ cmd: 'pubcomp', messageId: publish.messageId });
    await sleep(500);
    assert.equal(second.all('publish').length, 0, 'the message is not sent again');
  } finally {
    await second.destroy();
  }
});

test('bridge downlink: a retained message set by a service, and cleared with mqtt_empty (the Java client cannot send an empty body)', async () => {
  await producer.sendOk({ topic: downlink, body: 'kept', properties: { mqtt_topic: 'ret/x', mqtt_retain: '1' } });
  // The downlink is read asynchronously: new subscribers look until the retained message is there.
  let first = await connect(a.port, { clientId: 'ret-1' });
  let firstGot = collect(first);
  try {
    for (let i = 0; i < 50; i++) {
      await first.subscribeAsync('ret/#', { qos: 1 });
      const got = await firstGot.waitFor(1, 300).catch(() => []);
      if (got[0]?.packet.retain) break;
      await endClient(first, true);
      first = await connect(a.port, { clientId: 'ret-1' });
      firstGot = collect(first);
    }
    assert.equal(firstGot.messages[0]?.payload.toString(), 'kept');
    assert.equal(firstGot.messages[0]?.packet.retain, true, 'served as the retained message');
    await producer.sendOk({ topic: downlink, body: 'x', properties: { mqtt_topic: 'ret/x', mqtt_retain: '1', mqtt_empty: '1' } });
    const [, cleared] = await firstGot.waitFor(2, 30_000);
    assert.equal(cleared!.payload.length, 0, 'delivered with an empty payload');
  } finally {
    await endClient(first, true);
  }
  const second = await connect(b.port, { clientId: 'ret-2' });
  const secondGot = collect(second);
  try {
    await second.subscribeAsync('ret/#', { qos: 1 });
    await second.publishAsync('ret/marker', 'marker', { qos: 1 });
    const [firstMessage] = await secondGot.waitFor(1, 10_000);
    assert.equal(firstMessage!.topic, 'ret/marker', 'no retained message left on ret/x');
  } finally {
    await endClient(second, true);
  }
});

test('bridge downlink: malformed messages between good ones are refused and counted; the good ones arrive in order', async () => {
  const sub = await connect(b.port, { clientId: 'dl-bad-sub', protocolVersion: 5 });
  const got = collect(sub);
  await sub.subscribeAsync('dl/bad/#', { qos: 1 });
  const rejectedBefore = (await metric(a.adminPort, 'iotbridge_bridge_downlink_rejected_total')) + (await metric(b.adminPort, 'iotbridge_bridge_downlink_rejected_total'));
  const bad: { body: string; properties: Record<string, string> }[] = [
    { body: 'no topic', properties: { mqtt_qos: '1' } },
    { body: 'wildcard', properties: { mqtt_topic: 'dl/bad/+' } },
    { body: 'qos 5', properties: { mqtt_topic: 'dl/bad/x', mqtt_qos: '5' } },
    { body: 'x'.repeat(MAX_PACKET + 1), properties: { mqtt_topic: 'dl/bad/x' } },
    { body: 'bad user properties', properties: { mqtt_topic: 'dl/bad/x', mqtt_user_props: '{"a":1}' } },
  ];
  try {
    // The Java producer spreads messages over the queues; order holds per queue.
    const sent: { good: string; queueId: number }[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await producer.sendOk({ topic: downlink, body: `good-${i}`, properties: { mqtt_topic: 'dl/bad/x' } });
      sent.push({ good: `good-${i}`, queueId: r.queueId });
      if (i < bad.length) await producer.sendOk({ topic: downlink, ...bad[i]! });
    }
    const received = await got.waitFor(6, 30_000);
    assert.deepEqual(received.map((m) => m.payload.toString()).sort(), sent.map((s) => s.good).sort());
    for (const queueId of new Set(sent.map((s) => s.queueId))) {
      const expected = sent.filter((s) => s.queueId === queueId).map((s) => s.good);
      assert.deepEqual(received.map((m) => m.payload.toString()).filter((p) => expected.includes(p)), expected, `order of queue ${queueId}`);
    }
    let rejected = 0;
    for (let i = 0; i < 50 && rejected < rejectedBefore + bad.length; i++) {
      rejected = (await metric(a.adminPort, 'iotbridge_bridge_downlink_rejected_total')) + (await metric(b.adminPort, 'iotbridge_bridge_downlink_rejected_total'));
      if (rejected < rejectedBefore + bad.length) await sleep(100);
    }
    assert.equal(rejected - rejectedBefore, bad.length, 'each refused message counted once');
    const logged = [a, b].flatMap((n) => n.proc.output.join('').split('\n')).filter((l) => l.includes('downlink message refused'));
    assert.equal(logged.length, bad.length, 'each logged once');
    await sleep(300);
    assert.equal(got.messages.length, 6);
  } finally {
    await endClient(sub, true);
  }
});

test('bridge request/response: a service answers an MQTT 5 request through RocketMQ alone', async () => {
  const device = await connect(a.port, { clientId: 'rr-dev', protocolVersion: 5 });
  const replies = collect(device);
  try {
    await device.subscribeAsync('res/rr-dev', { qos: 1 });
    await device.publishAsync('req/rr-dev/reboot', 'please', { qos: 1, properties: { responseTopic: 'res/rr-dev', correlationData: Buffer.from('c-42') } });
    const [request] = await service.waitFor(1, 30_000, (m) => mqttTopic(m) === 'req/rr-dev/reboot');
    assert.equal(request!.tags, 'request', 'the route\'s fixed tag');
    await producer.sendOk({
      topic: downlink,
      body: 'done',
      properties: { mqtt_topic: request!.properties.mqtt_response_topic!, mqtt_correlation_data: request!.properties.mqtt_correlation_data!, mqtt_qos: '1' },
    });
    const [reply] = await replies.waitFor(1, 30_000);
    assert.equal(reply!.topic, 'res/rr-dev');
    assert.equal(reply!.payload.toString(), 'done');
    assert.equal(reply!.packet.properties?.correlationData?.toString(), 'c-42');
  } finally {
    await endClient(device, true);
  }
});

test('bridge docs: the command-line examples of docs/bridge.md work as written (mqadmin, the jshell downlink script)', async () => {
  const lib = path.join(defaultCacheDir(DEFAULT_ROCKETMQ_VERSION), 'lib');
  await mosquittoPub(a.port, ['-i', 'br-cli', '-q', '1', '-t', 'br/cli/t', '-m', '21.5']);
  const mqadmin = (...args: string[]): Promise<string> => run('java', ['-cp', `${lib}/*`, 'org.apache.rocketmq.tools.command.MQAdminStartup', ...args]);
  let ids: string[] = [];
  for (let attempt = 0; attempt < 5 && ids.length === 0; attempt++) {
    const byKey = await mqadmin('queryMsgByKey', '-n', namesrvAddr(), '-t', uplink, '-k', 'br-cli');
    ids = [...byKey.matchAll(/^([0-9A-F]{32})\s+\d+\s+\d+\s*$/gm)].map((m) => m[1]!);
    if (ids.length === 0) await sleep(1000); // the key index is built asynchronously
  }
  assert.equal(ids.length, 1, 'queryMsgByKey finds the device\'s message');
  const byId = await mqadmin('queryMsgById', '-n', namesrvAddr(), '-t', uplink, '-i', ids[0]!);
  assert.match(byId, /mqtt_topic=br\/cli\/t/);
  assert.match(byId, /mqtt_client=br-cli/);

  const device = await connect(b.port, { clientId: 'br-cli-sub' });
  const got = collect(device);
  try {
    await device.subscribeAsync('cli/cmd', { qos: 1 });
    const classPath = fs.readdirSync(lib).filter((f) => f.endsWith('.jar')).map((f) => path.join(lib, f)).join(':');
    const out = await run('jshell', [
      `-R-Dnamesrv=${namesrvAddr()}`, `-R-Dtopic=${downlink}`, '-R-DmqttTopic=cli/cmd', '-R-Dbody=reboot',
      '--class-path', classPath, path.join(repoRoot(), 'examples', 'bridge', 'downlink.jsh'),
    ]);
    assert.match(out, /SEND_OK/);
    const [message] = await got.waitFor(1, 30_000);
    assert.equal(message!.payload.toString(), 'reboot');
  } finally {
    await endClient(device, true);
  }
});

/** Runs a command to its end (bounded: 120 s); resolves with stdout, rejects on a non-zero exit. */
function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 120_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${cmd} exited with ${code}: ${stderr.slice(-2000)}`));
    });
  });
}

function mosquittoPub(port: number, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`mosquitto_pub exited with ${code}: ${stderr}`));
    });
  });
}

function metric(port: number, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(Number(new RegExp(`^${name} (\\d+)`, 'm').exec(body)?.[1] ?? NaN)));
      })
      .on('error', reject);
  });
}
