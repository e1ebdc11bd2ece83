import { describe, expect, it } from 'vitest';
import { InvalidTaskArgsError } from '../tasks/index.ts';
import { backoffDelayMs, isTransient } from './errors.ts';

describe('isTransient', () => {
  it('retries lost connections, serialization failures, deadlocks and restarts', () => {
    for (const code of ['08006', '08001', '40001', '40P01', '57P01', '57P03', 'ECONNRESET']) {
      expect(isTransient(Object.assign(new Error('x'), { code })), code).toBe(true);
    }
    expect(isTransient(new Error('Connection terminated unexpectedly'))).toBe(true);
  });
  it('never retries bugs, bad data or bad arguments', () => {
    expect(isTransient(new TypeError('x is undefined'))).toBe(false);
    expect(isTransient(Object.assign(new Error('division by zero'), { code: '22012' }))).toBe(false);
    expect(isTransient(new InvalidTaskArgsError('t', [{ field: 'a', message: 'a must be b' }]))).toBe(false);
  });
});

describe('backoffDelayMs', () => {
  it('doubles from the base, with ±10 % jitter, capped at an hour', () => {
    expect(backoffDelayMs(1, 1000, () => 0.5)).toBe(1000);
    expect(backoffDelayMs(2, 1000, () => 0.5)).toBe(2000);
    expect(backoffDelayMs(4, 1000, () => 0.5)).toBe(8000);
    expect(backoffDelayMs(3, 1000, () => 0)).toBe(3600);
    expect(backoffDelayMs(3, 1000, () => 1)).toBe(4400);
    expect(backoffDelayMs(40, 1000, () => 0.5)).toBe(3_600_000);
  });
});
