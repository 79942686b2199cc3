// A clock the test moves by hand: timers fire inside advance(), in due order, and only then.
// The broker core takes it in place of the system clock (src/broker/clock.ts).
import type { Clock, TimerHandle } from '../src/broker/clock';

interface PendingTimer {
  due: number;
  order: number;
  fn: () => void;
}

export class ManualClock implements Clock {
  private time: number;
  private order = 0;
  private readonly pending = new Set<PendingTimer>();

  constructor(start = 1_700_000_000_000) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer: PendingTimer = { due: this.time + Math.max(0, ms), order: this.order++, fn };
    this.pending.add(timer);
    return timer;
  }

  clearTimer(timer: TimerHandle): void {
    this.pending.delete(timer as PendingTimer);
  }

  /** Moves time forward by `ms`, running each timer that falls due on the way at its due time. */
  advance(ms: number): void {
    const target = this.time + ms;
    for (;;) {
      let next: PendingTimer | undefined;
      for (const timer of this.pending) {
        if (timer.due <= target && (!next || timer.due < next.due || (timer.due === next.due && timer.order < next.order))) next = timer;
      }
      if (!next) break;
      this.pending.delete(next);
      this.time = Math.max(this.time, next.due);
      next.fn();
    }
    this.time = target;
  }
}
