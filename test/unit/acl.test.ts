// The ACL file in Mosquitto's format, table-driven: anonymous rules, per-user rules, patterns with
// %c and %u, deny over grant, wildcards in rules and in subscriptions, shared subscriptions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Acl, AclFileError, filterCovers } from '../../src/auth/acl';

const FILE = `
# anonymous clients
topic read public/#

user alice
topic readwrite alice/#
topic deny alice/secret
topic write shared/in

user bob
topic bob/+/temp

pattern write devices/%c/up
pattern read devices/%c/down/#
pattern readwrite users/%u/#
`;

const acl = Acl.parse(FILE);
const anon = { clientId: 'anon-1' };
const alice = { clientId: 'a1', username: 'alice' };
const bob = { clientId: 'b1', username: 'bob' };

test('acl: publish decisions', () => {
  const cases: [string, { clientId: string; username?: string }, string, boolean][] = [
    ['anonymous may not publish to a read-only topic', anon, 'public/news', false],
    ['alice writes under alice/', alice, 'alice/x/y', true],
    ['deny wins over readwrite alice/#', alice, 'alice/secret', false],
    ['deny is exact: alice/secret/sub is not denied', alice, 'alice/secret/sub', true],
    ['write-only shared/in', alice, 'shared/in', true],
    ['alice has no rule for bob/', alice, 'bob/k/temp', false],
    ['access omitted means readwrite', bob, 'bob/kitchen/temp', true],
    ['bob/+/temp does not match two levels', bob, 'bob/a/b/temp', false],
    ['pattern %c for any client', anon, 'devices/anon-1/up', true],
    ['pattern %c is the client id, not another', anon, 'devices/other/up', false],
    ['read pattern does not grant write', anon, 'devices/anon-1/down/x', false],
    ['pattern %u needs a user name', anon, 'users/undefined/x', false],
    ['pattern %u for alice', alice, 'users/alice/x', true],
    ['nothing matches: refused', bob, 'elsewhere', false],
  ];
  for (const [why, who, topic, want] of cases) assert.equal(acl.canPublish(who, topic), want, why);
});

test('acl: subscribe decisions (the rule must cover the whole filter)', () => {
  const cases: [string, { clientId: string; username?: string }, string, boolean][] = [
    ['anonymous reads public/#', anon, 'public/#', true],
    ['a narrower filter is covered', anon, 'public/a/+', true],
    ['a wider filter is not', anon, '#', false],
    ['write-only topic cannot be subscribed', alice, 'shared/in', false],
    ['alice/# covers alice/+', alice, 'alice/+', true],
    ['deny applies to subscriptions within it', alice, 'alice/secret', false],
    ['bob/+/temp covers bob/kitchen/temp', bob, 'bob/kitchen/temp', true],
    ['bob/+/temp does not cover bob/#', bob, 'bob/#', false],
    ['read pattern with %c', anon, 'devices/anon-1/down/#', true],
    ['shared subscription checked as its filter', anon, '$share/g/public/x', true],
    ['shared subscription to a forbidden filter', anon, '$share/g/private/x', false],
  ];
  for (const [why, who, filter, want] of cases) assert.equal(acl.canSubscribe(who, filter), want, why);
});

test('acl: a client id or user name with a wildcard or a slash does not widen a pattern', () => {
  assert.equal(acl.canPublish({ clientId: '#' }, 'devices/x/up'), false);
  assert.equal(acl.canSubscribe({ clientId: 'a/b' }, 'devices/a/b/down/#'), false);
  assert.equal(acl.canPublish({ clientId: 'c', username: '+' }, 'users/anything/x'), false);
});

test('acl: filterCovers', () => {
  const cases: [string, string, boolean][] = [
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['a/#', 'a/+', true],
    ['a/+', 'a/#', false],
    ['a/+', 'a/b', true],
    ['a/b', 'a/+', false],
    ['+/b', 'x/b', true],
    ['#', '#', true],
    ['a', 'a/b', false],
  ];
  for (const [rule, sub, want] of cases) assert.equal(filterCovers(rule, sub), want, `${rule} covers ${sub}`);
});

test('acl: malformed lines are refused with their line number', () => {
  assert.throws(() => Acl.parse('user alice\nallow all\n'), (e: unknown) => e instanceof AclFileError && /line 2/.test(e.message));
  assert.throws(() => Acl.parse('topic\n'), /needs a topic/);
  // One word after "topic" is the topic itself, as in Mosquitto: a topic named "read", readwrite.
  assert.equal(Acl.parse('topic read\n').canPublish({ clientId: 'c' }, 'read'), true);
  assert.throws(() => Acl.parse('user\n'), /needs a name/);
});
