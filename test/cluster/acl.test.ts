// Authorization in cluster mode: two nodes with the same ACL file each enforce it on their own
// clients, including the read check of messages published on the other node.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { collect, connect, tempDir } from '../helpers';
import { arrivedBeforeMarker } from '../mqtt-helpers';
import { TestCluster } from './nodes';

const acl = path.join(tempDir(), 'acl');
fs.writeFileSync(acl, 'user reader\ntopic read x/#\ntopic deny x/secret\nuser writer\ntopic readwrite x/#\n');
const cluster = new TestCluster(['--acl-file', acl]);

after(async () => {
  await cluster.stop();
});

test('cluster ACL: the same file on every node; a deny holds for a message published on another node; a refused SUBSCRIBE and PUBLISH on either', async () => {
  const [a, b] = await cluster.startAll('acl-a', 'acl-b');
  const reader = await connect(b.port, { protocolVersion: 5, clientId: 'acl-reader', username: 'reader' });
  const writer = await connect(a.port, { protocolVersion: 5, clientId: 'acl-writer', username: 'writer' });
  const markerOnB = await connect(b.port, { protocolVersion: 5, clientId: 'acl-marker', username: 'writer' });
  try {
    const got = collect(reader);
    const [granted] = await reader.subscribeAsync('x/#', { qos: 1 });
    assert.equal(granted?.qos, 1);
    await assert.rejects(reader.subscribeAsync('y/#', { qos: 1 }), (e: Error & { packet?: { granted?: number[] } }) => e.packet?.granted?.[0] === 0x87);
    await writer.publishAsync('x/secret', 'not for reader', { qos: 1 });
    await writer.publishAsync('x/open', 'for reader', { qos: 1 });
    await assert.rejects(reader.publishAsync('x/open', 'reader may not write', { qos: 1 }), /0x87|135|Not authorized/i);
    // The marker is published on B after both messages from A were acknowledged (stored): x/secret would be before it.
    const before = await arrivedBeforeMarker(markerOnB, 'x/marker', got, 15_000);
    assert.deepEqual(before.map((p) => p.topic), ['x/open']);
  } finally {
    for (const c of [reader, writer, markerOnB]) c.end(true);
  }
});
