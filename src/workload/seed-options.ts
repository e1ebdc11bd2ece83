import { WorkloadOptionError } from './workload-option.error.ts';

/** What `seedDemoData` generates. Every count is per whole data set except `executionsPerDay`. */
export interface SeedOptions {
  /** Same seed, same options, empty database: the same rows. */
  seed: number;
  /** Data spans `[end - days, end)`. */
  days: number;
  executionsPerDay: number;
  workspaces: number;
  /** At least `workspaces`: every workspace has a user. */
  users: number;
  /** Default: now, truncated to the hour. */
  end?: Date;
}

/**
 * The data set `aggjobs start` loads into a new embedded database: 140,000 executions, ~71,000
 * activity events and ~154,000 credit transactions (measured: 2.4 s on 2 cores, PostgreSQL 15).
 */
export const demoDefaults: Readonly<Omit<SeedOptions, 'end'>> = Object.freeze({
  seed: 1,
  days: 7,
  executionsPerDay: 20_000,
  workspaces: 200,
  users: 2_000,
});

/**
 * Bounds that keep one day's working set (a temp table of `executionsPerDay` rows) in memory and the
 * generated ids below 2^53 (the pool reads int8 as a JavaScript number).
 */
export const seedLimits = Object.freeze({
  seed: { min: 0, max: 2_147_483_647 },
  days: { min: 1, max: 3_650 },
  executionsPerDay: { min: 1, max: 5_000_000 },
  workspaces: { min: 1, max: 1_000_000 },
  users: { min: 1, max: 100_000_000 },
});

/** Checks an integer option against its bounds; throws `WorkloadOptionError` naming it. */
export function checkInteger(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new WorkloadOptionError(field, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

/** The seed's options with `end` resolved, after every check has passed. */
export type CheckedSeedOptions = Readonly<Required<SeedOptions>>;

/** The hour that has most recently started: the default end of the seeded data. */
export function currentHour(now: Date = new Date()): Date {
  const hour = new Date(now);
  hour.setUTCMinutes(0, 0, 0);
  return hour;
}

/** Validates every option (naming the first bad one) and resolves the default `end`. */
export function checkSeedOptions(options: SeedOptions, now: Date = new Date()): CheckedSeedOptions {
  const seed = checkInteger('seed', options.seed, seedLimits.seed.min, seedLimits.seed.max);
  const days = checkInteger('days', options.days, seedLimits.days.min, seedLimits.days.max);
  const executionsPerDay = checkInteger(
    'executionsPerDay',
    options.executionsPerDay,
    seedLimits.executionsPerDay.min,
    seedLimits.executionsPerDay.max,
  );
  const workspaces = checkInteger(
    'workspaces',
    options.workspaces,
    seedLimits.workspaces.min,
    seedLimits.workspaces.max,
  );
  const users = checkInteger('users', options.users, seedLimits.users.min, seedLimits.users.max);
  if (users < workspaces) {
    throw new WorkloadOptionError('users', `at least workspaces (${workspaces})`, users);
  }
  const end = options.end ?? currentHour(now);
  if (!(end instanceof Date) || Number.isNaN(end.getTime())) {
    throw new WorkloadOptionError('end', 'a valid Date', options.end);
  }
  const year = end.getUTCFullYear();
  if (year < 1970 || year > 9999) {
    throw new WorkloadOptionError('end', 'a time between the years 1970 and 9999', end);
  }
  return Object.freeze({ seed, days, executionsPerDay, workspaces, users, end });
}
