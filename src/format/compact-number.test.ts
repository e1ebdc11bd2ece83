import { describe, expect, it } from 'vitest';
import { compactNumber } from './compact-number.ts';

describe('compactNumber', () => {
  it.each([
    [0, '0'],
    [999, '999'],
    [0.25, '0.25'],
    [12.345, '12.35'],
    [1000, '1k'],
    [1234, '1.2k'],
    [-1500, '-1.5k'],
    [3_000_000, '3M'],
    [2_500_000_000, '2.5G'],
  ])('%d → %s', (value, text) => {
    expect(compactNumber(value)).toBe(text);
  });
});
