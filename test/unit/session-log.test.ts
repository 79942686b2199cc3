// Unit tests of the session-log fold (src/cluster/session-log.ts): the rules that decide which
// writes count, so that two nodes never both write one session (docs/cluster.md §4).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionLogFold, decodeRecord, emptyState, encodeRecord, trackHeld, type LogRecord, type SessionState } from '../../src/cluster/session-log';
import type { SessionRecord } from '../../src/store/types';

const record = (clientId: string, expiryInterval = 60): SessionRecord => ({ clientId, protocolVersion: 5, expiryInterval, subscriptions: [] });

function state(overrides: Partial<SessionState> = {}): SessionState {
  return { ...emptyState(), record: record('c'), incarnation: 'i1', ...overrides };
}

function fold(records: LogRecord[]): SessionLogFold {
  const f = new SessionLogFold('c');
  for (const r of records) f.apply(r);
  return f;
}

test('session log: a claim gets the next epoch; a snapshot of that epoch makes its node the owner', () => {
  const f = fold([
    { t: 'claim', node: 'A', nonce: 'a1' },
    { t: 'snapshot', e: 1, node: 'A', state: state() },
  ]);
  assert.equal(f.epochOf('a1'), 1);
  assert.equal(f.owns(1), true);
  assert.equal(f.activeNode, 'A');
});

test('session log: a snapshot written after a later claim is invalid: the earlier claimant lost the race', () => {
  const f = fold([
    { t: 'claim', node: 'A', nonce: 'a1' },
    { t: 'claim', node: 'B', nonce: 'b1' },
    { t: 'snapshot', e: 1, node: 'A', state: state({ incarnation: 'from-A' }) },
    { t: 'snapshot', e: 2, node: 'B', state: state({ incarnation: 'from-B' }) },
  ]);
  assert.equal(f.active, 2);
  assert.equal(f.activeNode, 'B');
  assert.equal(f.state.incarnation, 'from-B');
});

test('session log: the old owner writes until it hands off; after that, and after a newer snapshot, its writes do not count', () => {
  const f = fold([
    { t: 'claim', node: 'A', nonce: 'a1' },
    { t: 'snapshot', e: 1, node: 'A', state: state() },
    { t: 'claim', node: 'B', nonce: 'b1' },
    // A still owns the session until its handoff: this ack counts.
    { t: 'change', e: 1, c: [{ k: 'done', broker: 'x', offset: 0 }] },
    { t: 'handoff', e: 1, node: 'A', clientId: 'c' },
    // Written after the handoff: fenced.
    { t: 'change', e: 1, c: [{ k: 'done', broker: 'x', offset: 1 }] },
  ]);
  assert.equal(f.owns(1), false);
  assert.equal(f.handedOff, true);
  assert.deepEqual(f.state.inbox.x, { floor: 1, done: [], pubrec: [] }, 'only the ack before the handoff');
  f.apply({ t: 'snapshot', e: 2, node: 'B', state: f.state });
  f.apply({ t: 'change', e: 1, c: [{ k: 'released', packetId: 9 }] }); // a dead owner's late write
  f.apply({ t: 'change', e: 2, c: [{ k: 'received', packetId: 7 }] });
  assert.deepEqual(f.state.inboundQos2, [7]);
});

test('session log: acks above the floor wait for the gap; PUBREC states are dropped once done; a new incarnation starts empty', () => {
  const f = fold([
    { t: 'claim', node: 'A', nonce: 'a1' },
    { t: 'snapshot', e: 1, node: 'A', state: state() },
    {
      t: 'change',
      e: 1,
      c: [
        { k: 'done', broker: 'x', offset: 1 },
        { k: 'pubrec', broker: 'x', offset: 2 },
      ],
    },
  ]);
  assert.deepEqual(f.state.inbox.x, { floor: 0, done: [1], pubrec: [2] });
  f.apply({ t: 'change', e: 1, c: [{ k: 'done', broker: 'x', offset: 0 }, { k: 'done', broker: 'x', offset: 2 }] });
  assert.deepEqual(f.state.inbox.x, { floor: 3, done: [], pubrec: [] });
  f.apply({ t: 'change', e: 1, c: [{ k: 'record', record: record('c'), incarnation: 'i2' }] });
  assert.deepEqual(f.state.inbox, {});
});

test('session log: the QoS 2 "received" record rides on the message; a batch record gives each session its own part', () => {
  const f = fold([
    { t: 'claim', node: 'A', nonce: 'a1' },
    { t: 'snapshot', e: 1, node: 'A', state: state() },
  ]);
  f.applyReceived(1, 5);
  f.applyReceived(0, 6); // another epoch's message: not this owner's
  f.apply({
    t: 'batch',
    parts: [
      { clientId: 'other', e: 1, c: [{ k: 'received', packetId: 99 }] },
      { clientId: 'c', e: 1, c: [{ k: 'received', packetId: 8 }] },
    ],
  });
  assert.deepEqual(f.state.inboundQos2, [5, 8]);
});

test('session log: records survive encoding, Buffers included; a node log lists the sessions a node holds', () => {
  const will = { delayInterval: 3, message: { topic: 'w', payload: Buffer.from([0, 1, 255]), qos: 1 as const, retain: false, publisherId: 'c', createdAt: 1 } };
  const snapshot: LogRecord = { t: 'snapshot', e: 3, node: 'A/x', clientId: 'c', state: state({ record: { ...record('c'), will } }) };
  const back = decodeRecord(encodeRecord(snapshot));
  assert.deepEqual(back, snapshot);
  assert.equal(decodeRecord(Buffer.from('not json')), undefined);

  const held = new Map<string, string>();
  trackHeld(held, snapshot);
  trackHeld(held, { t: 'snapshot', e: 1, node: 'A/x', clientId: 'd', state: state() });
  trackHeld(held, { t: 'handoff', e: 1, node: 'A/x', clientId: 'd' });
  trackHeld(held, { t: 'handoff', e: 1, node: 'B/y', clientId: 'c' }); // another node's handoff: not A's
  assert.deepEqual([...held], [['c', 'A/x']]);
});

test('session log: a fold that starts after the log\'s deleted beginning anchors its epochs at the snapshots it finds', () => {
  // The full log: claims 1..5 (the first ones deleted by retention), then what is still kept.
  const kept: LogRecord[] = [
    { t: 'claim', node: 'C', nonce: 'c5' }, // claim 5, kept; the fold cannot know its ordinal yet
    { t: 'snapshot', e: 4, node: 'B', state: state({ incarnation: 'from-B' }) }, // invalid: claim 5 came first
    { t: 'snapshot', e: 5, node: 'C', state: state({ incarnation: 'from-C' }) },
    { t: 'change', e: 4, c: [{ k: 'received', packetId: 1 }] }, // fenced
    { t: 'change', e: 5, c: [{ k: 'received', packetId: 2 }] },
    { t: 'claim', node: 'D', nonce: 'd6' },
  ];
  const partial = new SessionLogFold('c', true);
  for (const r of kept) partial.apply(r);
  assert.equal(partial.active, 5);
  assert.equal(partial.activeNode, 'C');
  assert.equal(partial.state.incarnation, 'from-C');
  assert.deepEqual(partial.state.inboundQos2, [2]);
  assert.equal(partial.epochOf('d6'), 6, 'a claim after the anchor gets the ordinal a full fold gives it');
  // A full fold of the same records (from the log's start) ignores those snapshots: epochs do not jump.
  const strict = fold(kept);
  assert.equal(strict.active, 0);
});
