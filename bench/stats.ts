/** Median, min and max of repeated measurements, in milliseconds. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number;
}

export function summarize(samples: number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median =
    sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  return { median, min: sorted[0] ?? 0, max: sorted[sorted.length - 1] ?? 0, runs: sorted.length };
}

export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

/** A duration for the report: milliseconds below a second, seconds above. */
export function formatMs(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n.toFixed(1)} ms`;
}

/** The median of paired ratios (measured ÷ reference, one per interleaved pair) and their spread. */
export interface PairedRatios {
  median: number;
  /** Interquartile range of the ratios (25th and 75th percentile, nearest rank). */
  q1: number;
  q3: number;
  min: number;
  max: number;
  pairs: number;
  ratios: number[];
}

export function pairedRatios(measured: readonly number[], reference: readonly number[]): PairedRatios {
  const ratios = measured.map((m, i) => m / (reference[i] ?? Number.NaN));
  const s = summarize(ratios);
  return {
    median: s.median,
    q1: percentile(ratios, 25),
    q3: percentile(ratios, 75),
    min: s.min,
    max: s.max,
    pairs: ratios.length,
    ratios,
  };
}

/** Times `fn`; a function that returns a number reports its own duration (ms) instead. */
async function timedOrReported(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  const result = await fn();
  return typeof result === 'number' ? result : performance.now() - started;
}

/**
 * Runs `measure` and `reference` in interleaved pairs, the order swapped every other pair (the first
 * of a pair warms the cache for the second), until at least `minPairs` pairs are done and the goal
 * lies outside the interquartile range of the paired ratios, or `maxPairs` are done. `before` runs
 * ahead of each pair, untimed (e.g. new rows for an incremental run). A function that returns a
 * number reports its own duration (ms).
 */
export async function interleavedPairs(options: {
  minPairs: number;
  maxPairs: number;
  goal?: number;
  before?: () => Promise<unknown>;
  measure: () => Promise<unknown>;
  reference: () => Promise<unknown>;
}): Promise<{ measured: number[]; reference: number[]; ratios: PairedRatios }> {
  const measured: number[] = [];
  const reference: number[] = [];
  for (let i = 0; i < options.maxPairs; i += 1) {
    if (options.before !== undefined) await options.before();
    if (i % 2 === 0) {
      reference.push(await timedOrReported(options.reference));
      measured.push(await timedOrReported(options.measure));
    } else {
      measured.push(await timedOrReported(options.measure));
      reference.push(await timedOrReported(options.reference));
    }
    if (i + 1 >= options.minPairs && options.goal !== undefined) {
      const r = pairedRatios(measured, reference);
      if (options.goal < r.q1 || options.goal > r.q3) break;
    }
  }
  return { measured, reference, ratios: pairedRatios(measured, reference) };
}

/** A ratio with its spread for the report: `1.23 (IQR 1.10–1.31, min–max 1.02–1.50, 9 pairs)`. */
export function formatRatios(r: PairedRatios): string {
  const f = (n: number): string => n.toFixed(3);
  return `${f(r.median)} (IQR ${f(r.q1)}–${f(r.q3)}, min–max ${f(r.min)}–${f(r.max)}, ${r.pairs} pairs)`;
}
