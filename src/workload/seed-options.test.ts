import { describe, expect, it } from 'vitest';
import { checkTrafficOptions } from './run-traffic.ts';
import { checkSeedOptions, currentHour, demoDefaults, type SeedOptions } from './seed-options.ts';
import { WorkloadOptionError } from './workload-option.error.ts';

const good: SeedOptions = { seed: 1, days: 2, executionsPerDay: 2000, workspaces: 20, users: 200 };

function rejection(check: () => unknown): WorkloadOptionError {
  try {
    check();
  } catch (error) {
    if (error instanceof WorkloadOptionError) return error;
    throw error;
  }
  throw new Error('expected a WorkloadOptionError');
}

describe('checkSeedOptions', () => {
  it('accepts the demo defaults and resolves end to the current hour', () => {
    const now = new Date('2026-11-29T13:47:12.345Z');
    const checked = checkSeedOptions({ ...demoDefaults }, now);
    expect(checked.end.toISOString()).toBe('2026-11-29T13:00:00.000Z');
    expect(checked.days).toBe(demoDefaults.days);
    expect(Object.isFrozen(checked)).toBe(true);
  });

  it('keeps an explicit end', () => {
    const end = new Date('2026-11-01T12:30:00Z');
    expect(checkSeedOptions({ ...good, end }).end).toBe(end);
  });

  it.each([
    ['seed', -1],
    ['seed', 2 ** 31],
    ['days', 0],
    ['days', 3651],
    ['days', 1.5],
    ['executionsPerDay', 0],
    ['executionsPerDay', 5_000_001],
    ['workspaces', 0],
    ['users', 0],
    ['days', Number.NaN],
    ['days', '3'],
  ] as const)('rejects %s = %s, naming the field and the rule', (field, value) => {
    const error = rejection(() => checkSeedOptions({ ...good, [field]: value } as SeedOptions));
    expect(error.field).toBe(field);
    expect(error.message).toMatch(new RegExp(`^${field} must be an integer from \\d+ to \\d+, got `));
  });

  it('rejects fewer users than workspaces', () => {
    const error = rejection(() => checkSeedOptions({ ...good, workspaces: 50, users: 49 }));
    expect(error.field).toBe('users');
    expect(error.message).toBe('users must be at least workspaces (50), got 49');
  });

  it('rejects an invalid end', () => {
    const error = rejection(() => checkSeedOptions({ ...good, end: new Date('not a date') }));
    expect(error.field).toBe('end');
    expect(error.message).toBe('end must be a valid Date, got an invalid date');
  });
});

describe('currentHour', () => {
  it('truncates to the hour in UTC', () => {
    expect(currentHour(new Date('2026-03-29T01:59:59.999Z')).toISOString()).toBe('2026-03-29T01:00:00.000Z');
  });
});

describe('checkTrafficOptions', () => {
  it('accepts a rate with or without a duration', () => {
    expect(() => checkTrafficOptions({ rate: 50, seed: 1 })).not.toThrow();
    expect(() => checkTrafficOptions({ rate: 50, seed: 1, durationSeconds: 2 })).not.toThrow();
  });

  it.each([
    ['rate', 0],
    ['rate', 100_001],
    ['rate', 2.5],
    ['durationSeconds', 0],
    ['seed', -3],
  ] as const)('rejects %s = %s', (field, value) => {
    const error = rejection(() => checkTrafficOptions({ rate: 50, seed: 1, [field]: value }));
    expect(error.field).toBe(field);
  });

  it('rejects fewer users than workspaces', () => {
    expect(rejection(() => checkTrafficOptions({ rate: 5, seed: 1, workspaces: 10, users: 5 })).field).toBe(
      'users',
    );
  });
});
