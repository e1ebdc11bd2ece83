import { describe, expect, it } from 'vitest';
import { reconnectDelayMs } from './reconnect-backoff.ts';

describe('reconnectDelayMs', () => {
  it('starts at 0.5 s and doubles up to 10 s', () => {
    const top = () => 0.999_999;
    expect([1, 2, 3, 4, 5, 6, 7, 50].map((n) => reconnectDelayMs(n, top))).toEqual([
      500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000,
    ]);
  });
  it('jitters down to 75 % of the delay, never above it', () => {
    expect(reconnectDelayMs(1, () => 0)).toBe(375);
    expect(reconnectDelayMs(9, () => 0)).toBe(7500);
    for (let i = 0; i < 200; i += 1) {
      const d = reconnectDelayMs(20);
      expect(d).toBeGreaterThanOrEqual(7500);
      expect(d).toBeLessThanOrEqual(10_000);
    }
  });
  it('treats attempt 0 or less as the first', () => {
    expect(reconnectDelayMs(0, () => 0.999_999)).toBe(500);
  });
});
