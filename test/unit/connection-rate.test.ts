// The per-address connection rate (maxConnectionsPerAddressPerSecond) on a given clock: a burst of
// one second's worth, then the refill rate; refused attempts take nothing; the table is bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionRateLimiter, addressKey } from '../../src/transport/connection-rate';

test('connection rate: a second\'s worth at once, then one per 1/limit seconds; addresses are counted apart', () => {
  const limiter = new ConnectionRateLimiter(3);
  const admitted = (address: string, now: number, n: number) => Array.from({ length: n }, () => limiter.admit(address, now));
  assert.deepEqual(admitted('10.0.0.1', 0, 5), [true, true, true, false, false]);
  assert.deepEqual(admitted('10.0.0.2', 0, 4), [true, true, true, false], 'another address has its own bucket');
  assert.deepEqual(admitted('10.0.0.1', 333, 1), [false], 'not a whole connection refilled yet');
  assert.deepEqual(admitted('10.0.0.1', 334, 2), [true, false], 'refused attempts took nothing: one refilled after 1/3 s');
  assert.deepEqual(admitted('10.0.0.1', 60_000, 4), [true, true, true, false], 'never more than a second\'s worth saved up');
});

test('connection rate: the table is bounded; a sweep forgets addresses whose bucket refilled', () => {
  const limiter = new ConnectionRateLimiter(1, 2);
  assert.equal(limiter.admit('a', 0), true);
  assert.equal(limiter.admit('b', 0), true);
  assert.equal(limiter.admit('a', 0), false);
  assert.equal(limiter.admit('c', 0), true, 'past the bound a new address is let through untracked');
  assert.equal(limiter.admit('c', 0), true);
  assert.equal(limiter.trackedAddresses, 2);
  limiter.sweep(500);
  assert.equal(limiter.trackedAddresses, 2, 'buckets not yet refilled stay');
  limiter.sweep(1000);
  assert.equal(limiter.trackedAddresses, 0);
  assert.equal(limiter.admit('c', 1000), true);
  assert.equal(limiter.admit('c', 1000), false, 'tracked once there is room');
});

test('connection rate: an IPv4 client on a dual-stack socket counts as its IPv4 address', () => {
  assert.equal(addressKey('::ffff:127.0.0.1'), '127.0.0.1');
  assert.equal(addressKey('127.0.0.1'), '127.0.0.1');
  assert.equal(addressKey('::1'), '::1');
});
