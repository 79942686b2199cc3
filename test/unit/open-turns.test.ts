// The primary's opening turns (src/machine/open-turns.ts) as a state machine: one worker opens the
// shared LMDB environment at a time, and only once every other worker that has opened it holds its
// writes; the writes go on once it has opened or died. Driven with recorded messages, no processes.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { silentLogger } from '../../src/broker/options';
import { OpenTurns, type TurnTaker } from '../../src/machine/open-turns';

class FakeWorker implements TurnTaker {
  readonly got: { type: string; id?: number }[] = [];
  connected = true;
  readonly process: { pid: number };
  constructor(pid: number) {
    this.process = { pid };
  }
  send(message: unknown): void {
    this.got.push(message as { type: string; id?: number });
  }
  isConnected(): boolean {
    return this.connected;
  }
  types(): string[] {
    return this.got.map((m) => m.type);
  }
  lastHold(): number | undefined {
    return [...this.got].reverse().find((m) => m.type === 'iotb:hold-writes')?.id;
  }
}

function setup(): { turns: OpenTurns; a: FakeWorker; b: FakeWorker; c: FakeWorker } {
  return { turns: new OpenTurns(silentLogger), a: new FakeWorker(1), b: new FakeWorker(2), c: new FakeWorker(3) };
}

describe('OpenTurns', () => {
  it('lets the first worker open at once, and the next one only after the first has opened', () => {
    const { turns, a, b } = setup();
    turns.onMessage(a, { type: 'iotb:open-turn' });
    turns.onMessage(b, { type: 'iotb:open-turn' });
    assert.deepEqual(a.types(), ['iotb:open-now']);
    assert.deepEqual(b.types(), [], 'b waits while a opens');
    turns.onMessage(a, { type: 'iotb:opened' });
    assert.deepEqual(a.types(), ['iotb:open-now', 'iotb:hold-writes'], 'a, now open, holds its writes for b');
    assert.deepEqual(b.types(), [], 'b waits until a holds');
    turns.onMessage(a, { type: 'iotb:writes-held', id: a.lastHold() });
    assert.deepEqual(b.types(), ['iotb:open-now']);
    turns.onMessage(b, { type: 'iotb:opened' });
    assert.deepEqual(a.types(), ['iotb:open-now', 'iotb:hold-writes', 'iotb:release-writes']);
  });

  it('has every worker that opened before hold its writes, the one that opened just before included', () => {
    const { turns, a, b, c } = setup();
    turns.onMessage(a, { type: 'iotb:open-turn' });
    turns.onMessage(a, { type: 'iotb:opened' });
    turns.onMessage(b, { type: 'iotb:open-turn' });
    turns.onMessage(c, { type: 'iotb:open-turn' });
    turns.onMessage(a, { type: 'iotb:writes-held', id: a.lastHold() });
    turns.onMessage(b, { type: 'iotb:opened' });
    // c's turn: both a and b must hold before c opens.
    assert.equal(b.lastHold() !== undefined, true, 'b, which opened just before, holds its writes for c');
    turns.onMessage(a, { type: 'iotb:writes-held', id: a.lastHold() });
    assert.deepEqual(c.types(), [], 'c waits for b too');
    turns.onMessage(b, { type: 'iotb:writes-held', id: b.lastHold() });
    assert.deepEqual(c.types(), ['iotb:open-now']);
  });

  it('does not wait for a worker that dies while it should hold, and releases the others when the opener dies', () => {
    const { turns, a, b, c } = setup();
    for (const w of [a, b]) {
      turns.onMessage(w, { type: 'iotb:open-turn' });
      if (w === b) turns.onMessage(a, { type: 'iotb:writes-held', id: a.lastHold() });
      turns.onMessage(w, { type: 'iotb:opened' });
    }
    turns.onMessage(c, { type: 'iotb:open-turn' });
    turns.onMessage(a, { type: 'iotb:writes-held', id: a.lastHold() });
    b.connected = false;
    turns.onExit(b);
    assert.deepEqual(c.types(), ['iotb:open-now'], 'b died: c opens without it');
    c.connected = false;
    turns.onExit(c);
    assert.equal(a.types().at(-1), 'iotb:release-writes', 'c died before it opened: a writes again');
  });

  it('ignores a late answer of an earlier round', () => {
    const { turns, a, b, c } = setup();
    turns.onMessage(a, { type: 'iotb:open-turn' });
    turns.onMessage(a, { type: 'iotb:opened' });
    turns.onMessage(b, { type: 'iotb:open-turn' });
    const firstRound = a.lastHold();
    turns.onMessage(a, { type: 'iotb:writes-held', id: firstRound });
    turns.onMessage(b, { type: 'iotb:opened' });
    turns.onMessage(c, { type: 'iotb:open-turn' });
    turns.onMessage(a, { type: 'iotb:writes-held', id: firstRound });
    turns.onMessage(b, { type: 'iotb:writes-held', id: firstRound });
    assert.deepEqual(c.types(), [], 'answers to the round before do not let c open');
  });
});
