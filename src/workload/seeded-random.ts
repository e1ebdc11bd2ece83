/** A small, fast, seeded pseudo-random generator (mulberry32): uniform draws in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * An execution time in milliseconds, log-normal like the seeded history's (median 2.5 s, 99th
 * percentile ~100 s), clamped to [50 ms, 10 min].
 */
export function drawDurationMs(random: () => number): number {
  const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return Math.min(600_000, Math.max(50, Math.round(Math.exp(Math.log(2500) + 1.6 * z))));
}

export type Outcome = 'success' | 'failed' | 'timeout' | 'cancelled';

/** 85 % success, 10 % failed, 3 % timeout, 2 % cancelled: the seeded history's mix. */
export function drawOutcome(random: () => number): Outcome {
  const u = random();
  if (u < 0.85) return 'success';
  if (u < 0.95) return 'failed';
  if (u < 0.98) return 'timeout';
  return 'cancelled';
}
