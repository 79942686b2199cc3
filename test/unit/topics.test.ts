// Unit tests of topic name / filter validation and matching (MQTT 5 §4.7).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSharedFilter, topicFilterError, topicMatches, topicNameError } from '../../src/protocol/topics';

test('topicNameError: valid names and each kind of invalid one', () => {
  for (const ok of ['a', 'a/b', '/', '/a', 'a/', '$SYS/x', 'a b/ü/€', 'x'.repeat(65535)]) {
    assert.equal(topicNameError(ok), null, JSON.stringify(ok.slice(0, 20)));
  }
  assert.match(topicNameError('') ?? '', /empty/);
  assert.match(topicNameError('a/+') ?? '', /wildcard/);
  assert.match(topicNameError('a/#') ?? '', /wildcard/);
  assert.match(topicNameError('a+b') ?? '', /wildcard/);
  assert.match(topicNameError('a\u0000b') ?? '', /U\+0000/);
  assert.match(topicNameError('x'.repeat(65536)) ?? '', /65535/);
  assert.match(topicNameError('€'.repeat(21846)) ?? '', /65535/, 'the limit is in UTF-8 bytes, not characters');
});

test('topicFilterError: wildcards must be whole levels, # last', () => {
  for (const ok of ['#', '+', 'a/#', '+/+/#', 'a/+/b', '/', '/+', '+/', '$SYS/#', 'a//b']) {
    assert.equal(topicFilterError(ok), null, ok);
  }
  for (const bad of ['', 'a/#/b', '#/a', 'a#', 'a/b#', 'a/b+', '+a', 'a/++', '##', 'a\u0000']) {
    assert.notEqual(topicFilterError(bad), null, JSON.stringify(bad));
  }
});

test('parseSharedFilter: $share/{group}/{filter}', () => {
  assert.deepEqual(parseSharedFilter('$share/g/a/b'), { group: 'g', filter: 'a/b' });
  assert.deepEqual(parseSharedFilter('$share/g/#'), { group: 'g', filter: '#' });
  assert.equal(parseSharedFilter('a/b'), null);
  assert.equal(parseSharedFilter('$sharex/g/a'), null);
  for (const bad of ['$share/g', '$share//a', '$share/g+/a', '$share/g#/a', '$share/g/a/#/b', '$share/g/']) {
    assert.equal(typeof parseSharedFilter(bad), 'string', bad);
  }
});

test('topicMatches: wildcards, empty levels and $ topics', () => {
  const cases: [string, string, boolean][] = [
    ['a/b', 'a/b', true],
    ['a/b', 'a/c', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/b/c', false],
    ['a/+', 'a/', true],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['#', 'a/b', true],
    ['+/+', '/a', true],
    ['+', '/a', false],
    ['#', '$SYS/a', false],
    ['+/a', '$SYS/a', false],
    ['$SYS/#', '$SYS/a', true],
    ['$SYS/+', '$SYS/a', true],
    ['a/b', 'a/b/', false],
  ];
  for (const [filter, topic, want] of cases) assert.equal(topicMatches(filter, topic), want, `${filter} ~ ${topic}`);
});
