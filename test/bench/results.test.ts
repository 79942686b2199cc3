// How the bench decides a case's result from its runs: a repeated case keeps its median run by p99,
// and a failed run is never hidden by better ones.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { medianRun } from '../../bench/cases';
import type { GeneratorResult, ResultLine } from '../../bench/types';

function run(p99Ms: number, ok = true): ResultLine {
  return {
    runId: 'r',
    time: '',
    quick: false,
    host: { cpus: 2, cpuModel: '', node: '', brokerCore: '0', generatorCore: '1' },
    broker: 'b',
    brokerLabel: 'b',
    brokerVersion: '',
    caseId: 'latency-qos1-10k',
    scenario: 'latency',
    qos: 1,
    payloadBytes: 64,
    throughput: 10_000,
    throughputUnit: 'msg/s',
    generator: { latency: { p50Ms: 1, p99Ms, maxMs: p99Ms * 2 } } as GeneratorResult,
    ok,
    errors: ok ? [] : ['lost 3'],
  };
}

describe('medianRun', () => {
  it('keeps the run with the median p99, whatever the order of the runs', () => {
    for (const order of [[9, 2, 5], [2, 5, 9], [5, 9, 2]]) {
      assert.equal(medianRun(order.map((p) => run(p))).generator!.latency.p99Ms, 5);
    }
  });

  it('keeps the lower middle of an even number of runs, and the only run of one', () => {
    assert.equal(medianRun([run(8), run(3), run(6), run(1)]).generator!.latency.p99Ms, 3);
    assert.equal(medianRun([run(7)]).generator!.latency.p99Ms, 7);
  });

  it('keeps a failed run over better ones', () => {
    const kept = medianRun([run(2), run(50, false), run(3)]);
    assert.equal(kept.ok, false);
    assert.deepEqual(kept.errors, ['lost 3']);
  });
});
