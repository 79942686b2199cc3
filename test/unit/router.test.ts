// Unit tests of the subscription trie: wildcards, $ topics, shared groups, removal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router, type SharedGroup } from '../../src/broker/router';
import type { StoredSubscription } from '../../src/store/types';

const sub = (filter: string, qos: 0 | 1 | 2 = 0): StoredSubscription => ({ filter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0 });

function matches(router: Router, topic: string): { subscribers: string[]; groups: SharedGroup[] } {
  const subscribers: string[] = [];
  const groups: SharedGroup[] = [];
  router.match(topic, {
    subscriber: (clientId, s) => subscribers.push(`${clientId}:${s.filter}`),
    shared: (g) => groups.push(g),
  });
  return { subscribers: subscribers.sort(), groups };
}

test('router: exact, + and # filters', () => {
  const r = new Router();
  for (const f of ['a/b/c', 'a/+/c', 'a/#', '#', '+/+/+', 'a/b', '+', 'a/+', 'x/#']) r.add(f, f, sub(f));
  assert.equal(r.size, 9);
  assert.deepEqual(matches(r, 'a/b/c').subscribers, ['#:#', '+/+/+:+/+/+', 'a/#:a/#', 'a/+/c:a/+/c', 'a/b/c:a/b/c']);
  assert.deepEqual(matches(r, 'a').subscribers, ['#:#', '+:+', 'a/#:a/#'], "'a/#' also matches the parent level 'a'");
  assert.deepEqual(matches(r, 'a/b').subscribers, ['#:#', 'a/#:a/#', 'a/+:a/+', 'a/b:a/b']);
  assert.deepEqual(matches(r, 'a/').subscribers, ['#:#', 'a/#:a/#', 'a/+:a/+'], "'+' matches an empty level");
  assert.deepEqual(matches(r, 'b/b/c').subscribers, ['#:#', '+/+/+:+/+/+']);
  assert.deepEqual(matches(r, 'a/b/c/d').subscribers, ['#:#', 'a/#:a/#']);
  assert.deepEqual(matches(r, 'x').subscribers, ['#:#', '+:+', 'x/#:x/#']);
});

test('router: a leading wildcard does not match a $ topic; an explicit $ filter does', () => {
  const r = new Router();
  for (const f of ['#', '+/info', '$SYS/#', '$SYS/+', '+/+']) r.add(f, f, sub(f));
  assert.deepEqual(matches(r, '$SYS/info').subscribers, ['$SYS/#:$SYS/#', '$SYS/+:$SYS/+']);
  assert.deepEqual(matches(r, '$SYS').subscribers, ['$SYS/#:$SYS/#']);
  assert.deepEqual(matches(r, 'SYS/info').subscribers, ['#:#', '+/+:+/+', '+/info:+/info']);
});

test('router: one client with overlapping filters is visited once per filter; re-adding replaces', () => {
  const r = new Router();
  r.add('c1', 'a/#', sub('a/#', 0));
  r.add('c1', 'a/+', sub('a/+', 1));
  r.add('c1', 'a/+', sub('a/+', 2));
  assert.equal(r.size, 2);
  const qos: number[] = [];
  r.match('a/b', { subscriber: (_id, s) => qos.push(s.qos), shared: () => undefined });
  assert.deepEqual(qos.sort(), [0, 2]);
});

test('router: remove returns whether it existed, prunes, and leaves others', () => {
  const r = new Router();
  r.add('c1', 'a/b/c', sub('a/b/c'));
  r.add('c2', 'a/b/c', sub('a/b/c'));
  r.add('c1', 'a/#', sub('a/#'));
  assert.equal(r.remove('c1', 'a/b/c'), true);
  assert.equal(r.remove('c1', 'a/b/c'), false);
  assert.equal(r.remove('c1', 'never/added'), false);
  assert.equal(r.size, 2);
  assert.deepEqual(matches(r, 'a/b/c').subscribers, ['c1:a/#', 'c2:a/b/c']);
  assert.equal(r.remove('c2', 'a/b/c'), true);
  assert.equal(r.remove('c1', 'a/#'), true);
  assert.equal(r.size, 0);
  assert.deepEqual(matches(r, 'a/b/c').subscribers, []);
  r.add('c3', 'a/b/c', sub('a/b/c'));
  assert.deepEqual(matches(r, 'a/b/c').subscribers, ['c3:a/b/c'], 'a pruned branch can be built again');
});

test('router: a shared group is visited once per message and round-robins over its members, preferring eligible ones', () => {
  const r = new Router();
  r.add('m1', 's/+', sub('$share/g/s/+', 1), 'g');
  r.add('m2', 's/+', sub('$share/g/s/+', 1), 'g');
  r.add('m3', 's/+', sub('$share/g/s/+', 1), 'g');
  r.add('o1', 's/+', sub('$share/other/s/+', 1), 'other');
  r.add('plain', 's/+', sub('s/+'));
  const { subscribers, groups } = matches(r, 's/x');
  assert.deepEqual(subscribers, ['plain:s/+']);
  assert.deepEqual(groups.map((g) => g.name).sort(), ['g', 'other']);

  const g = r.sharedGroup('s/+', 'g')!;
  const all = () => true;
  const picks = Array.from({ length: 6 }, () => g.pick(all)![0]);
  assert.deepEqual(picks, ['m1', 'm2', 'm3', 'm1', 'm2', 'm3']);
  const onlyM3 = (id: string) => id === 'm3';
  assert.deepEqual([g.pick(onlyM3)![0], g.pick(onlyM3)![0]], ['m3', 'm3']);
  assert.notEqual(g.pick(all, 'm1')![0], 'm1', 'exclude skips a member');
  const none = () => false;
  assert.ok(['m1', 'm2', 'm3'].includes(g.pick(none)![0]), 'with no eligible member one is still picked');

  assert.equal(r.remove('m1', 's/+', 'g'), true);
  assert.equal(r.remove('m2', 's/+', 'g'), true);
  assert.equal(r.remove('m3', 's/+', 'g'), true);
  assert.equal(r.sharedGroup('s/+', 'g'), undefined, 'an empty group is removed');
  assert.deepEqual(matches(r, 's/x').groups.map((x) => x.name), ['other']);
});
