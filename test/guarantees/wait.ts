/** Polls `cond` until it holds; fails with `what` after `timeoutMs`. A bounded wait, not a timing assertion. */
export async function waitUntil(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The first occurrence of each value, in arrival order (QoS 1 may deliver duplicates). */
export function firstAppearances<T>(values: T[]): T[] {
  const seen = new Set<T>();
  return values.filter((v) => (seen.has(v) ? false : (seen.add(v), true)));
}

export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
