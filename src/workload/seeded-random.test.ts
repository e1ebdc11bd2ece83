import { describe, expect, it } from 'vitest';
import { drawDurationMs, drawOutcome, seededRandom } from './seeded-random.ts';

describe('seededRandom', () => {
  it('repeats a sequence for a seed and differs between seeds', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    const c = seededRandom(8);
    const seqA = Array.from({ length: 20 }, a);
    expect(Array.from({ length: 20 }, b)).toEqual(seqA);
    expect(Array.from({ length: 20 }, c)).not.toEqual(seqA);
    expect(seqA.every((u) => u >= 0 && u < 1)).toBe(true);
  });

  it('draws the history mix of outcomes and durations', () => {
    const random = seededRandom(1);
    const n = 20_000;
    const outcomes = new Map<string, number>();
    const durations: number[] = [];
    for (let i = 0; i < n; i += 1) {
      const outcome = drawOutcome(random);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      durations.push(drawDurationMs(random));
    }
    expect((outcomes.get('success') ?? 0) / n).toBeCloseTo(0.85, 1);
    expect((outcomes.get('failed') ?? 0) / n).toBeCloseTo(0.1, 1);
    durations.sort((x, y) => x - y);
    expect(durations[0]).toBeGreaterThanOrEqual(50);
    expect(durations.at(-1)).toBeLessThanOrEqual(600_000);
    const median = durations[n / 2] ?? 0;
    expect(median).toBeGreaterThan(2000);
    expect(median).toBeLessThan(3100);
  });
});
