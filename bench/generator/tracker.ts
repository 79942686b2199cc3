// Correctness and latency accounting on the subscriber side. Pure logic, no I/O, unit-tested.
import type { LatencyStats } from '../types';

/** What one subscriber saw from one publisher. */
export class Stream {
  private bits: Uint8Array = new Uint8Array(64);
  /** Highest sequence seen so far, -1 before the first message. */
  highest = -1;
  unique = 0;
  duplicates = 0;
  outOfOrder = 0;

  /** Records one delivery; returns true when it is the first delivery of this sequence. */
  record(seq: number): boolean {
    const byte = seq >>> 3;
    if (byte >= this.bits.length) {
      let n = this.bits.length * 2;
      while (n <= byte) n *= 2;
      const grown = new Uint8Array(n);
      grown.set(this.bits);
      this.bits = grown;
    }
    const mask = 1 << (seq & 7);
    if ((this.bits[byte] & mask) !== 0) {
      this.duplicates++;
      return false;
    }
    this.bits[byte] |= mask;
    this.unique++;
    if (seq < this.highest) this.outOfOrder++;
    else this.highest = seq;
    return true;
  }
}

/** Bounded latency sample: keeps every sample up to `cap`, then a uniform reservoir; max is exact. */
export class LatencySampler {
  private readonly samples: Float64Array;
  private n = 0;
  private seen = 0;
  private max = 0;
  private rng = 0x2545f491;

  constructor(private readonly cap = 1_000_000) {
    this.samples = new Float64Array(cap);
  }

  add(ms: number): void {
    this.seen++;
    if (ms > this.max) this.max = ms;
    if (this.n < this.cap) {
      this.samples[this.n++] = ms;
      return;
    }
    // xorshift32: cheap deterministic reservoir sampling.
    this.rng ^= this.rng << 13;
    this.rng ^= this.rng >>> 17;
    this.rng ^= this.rng << 5;
    const j = (this.rng >>> 0) % this.seen;
    if (j < this.cap) this.samples[j] = ms;
  }

  stats(): LatencyStats {
    if (this.n === 0) return { samples: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 };
    const s = this.samples.slice(0, this.n).sort();
    const at = (q: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
    const r3 = (x: number): number => Math.round(x * 1000) / 1000;
    return { samples: this.seen, p50Ms: r3(at(0.5)), p99Ms: r3(at(0.99)), maxMs: r3(this.max) };
  }
}
