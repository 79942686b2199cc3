/**
 * MQTT's own time, as the broker core sees it: keep-alive, will delay, session and message
 * expiry read it. It is injected so that tests drive those on a controlled clock, without
 * sleeping and without racing the wall clock. Waits on real I/O (store retries, the stop
 * deadline) stay on real time: a test clock must not decide how long a disk takes.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` once, `ms` from now; the timer does not keep the process alive. */
  setTimer(fn: () => void, ms: number): TimerHandle;
  clearTimer(timer: TimerHandle): void;
}

/** What setTimer returns; only clearTimer looks inside. */
export type TimerHandle = object;

export const systemClock: Clock = {
  now: Date.now,
  setTimer(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return timer;
  },
  clearTimer(timer) {
    clearTimeout(timer as NodeJS.Timeout);
  },
};
