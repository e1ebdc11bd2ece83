import { z } from 'zod';
import type { AnyTaskDefinition, ArgsEnvironment } from './task-definition.ts';
import { InvalidTaskArgsError } from './task-errors.ts';
import { bucketOf, parseIsoInZone, type TaskGrain } from './time-window.ts';

const DAY_MS = 86_400_000;
/** Dates outside these years are typos (year 99999), not history. */
const MIN_YEAR = 2000;
const MAX_YEAR = 2100;
/** A backfill longer than this is a mistake, whatever the retention (10 years). */
export const MAX_BACKFILL_DAYS = 3660;

export function shown(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (value === undefined) return 'nothing';
  return JSON.stringify(value) ?? String(value);
}

function stringField(field: string, rule: string): z.ZodString {
  return z.string({ error: (issue) => `${field} must be ${rule}, got ${shown(issue.input)}` });
}

/**
 * An ISO date or date-time (wall time in ANALYTICS_TIMEZONE unless it has an offset), checked to lie
 * in a sane year, not in the future, and within the retention period (older source rows are gone).
 */
export function isoTime(field: string, example: string, env: ArgsEnvironment): z.ZodType<string, string> {
  const rule = `an ISO date or date-time such as ${example}`;
  return stringField(field, rule).superRefine((value, ctx) => {
    const fail = (message: string): void => ctx.addIssue({ code: 'custom', message, input: value });
    const t = parseIsoInZone(value, env.settings.analyticsTimezone);
    if (t === undefined) return fail(`${field} must be ${rule}, got ${shown(value)}`);
    const year = t.getUTCFullYear();
    if (year < MIN_YEAR || year > MAX_YEAR) {
      return fail(`${field} must be a date from year ${MIN_YEAR} to ${MAX_YEAR}, got ${shown(value)}`);
    }
    if (t.getTime() > env.now.getTime())
      return fail(`${field} must not be in the future, got ${shown(value)}`);
    const oldest = env.now.getTime() - env.settings.retentionDays * DAY_MS;
    if (t.getTime() < oldest) {
      return fail(
        `${field} must be within the retention period (the last ${env.settings.retentionDays} days, ` +
          `RETENTION_DAYS), got ${shown(value)}`,
      );
    }
  });
}

/** Arguments of the four rollup tasks: an optional target in their grain. */
export type TargetArgs<F extends string> = Partial<Record<F, string>>;

export function rollupArgs<F extends string>(
  field: F,
  example: string,
): (env: ArgsEnvironment) => z.ZodType<TargetArgs<F>, TargetArgs<F>> {
  // zod types a computed key as an index signature; the object has exactly `field`, optional.
  return (env) =>
    z.strictObject({ [field]: isoTime(field, example, env).optional() }) as unknown as z.ZodType<
      TargetArgs<F>,
      TargetArgs<F>
    >;
}

export const granularities = ['hourly', 'daily', 'weekly', 'monthly'] as const;
export type Granularity = (typeof granularities)[number];
export const grainOfGranularity: Record<Granularity, TaskGrain> = {
  hourly: 'hour',
  daily: 'day',
  weekly: 'week',
  monthly: 'month',
};

/**
 * A backfill's range is bounded by what can be recomputed: start_date within RETENTION_DAYS (older
 * source rows are deleted, their buckets frozen; the enqueue also checks the recorded retention
 * watermark, which a cleanup with a shorter retention moves later), end_date after start_date, at
 * most MAX_BACKFILL_DAYS later, and not after the end of the bucket holding now.
 */
export function backfillArgs(env: ArgsEnvironment) {
  return z
    .strictObject({
      start_date: isoTime('start_date', '2025-01-01T00:00:00', env),
      end_date: stringField('end_date', 'an ISO date or date-time such as 2025-01-09T00:00:00').refine(
        (v) => parseIsoInZone(v, env.settings.analyticsTimezone) !== undefined,
        {
          error: (issue) =>
            `end_date must be an ISO date or date-time such as 2025-01-09T00:00:00, got ${shown(issue.input)}`,
        },
      ),
      granularity: z.enum(granularities, {
        error: (issue) => `granularity must be one of ${granularities.join(', ')}, got ${shown(issue.input)}`,
      }),
    })
    .superRefine((args, ctx) => {
      const zone = env.settings.analyticsTimezone;
      const start = parseIsoInZone(args.start_date, zone);
      const end = parseIsoInZone(args.end_date, zone);
      if (start === undefined || end === undefined) return;
      const fail = (message: string): void =>
        ctx.addIssue({ code: 'custom', path: ['end_date'], message, input: args.end_date });
      if (end.getTime() <= start.getTime()) {
        return fail(`end_date must be after start_date (${args.start_date}), got ${shown(args.end_date)}`);
      }
      if (end.getUTCFullYear() > MAX_YEAR) {
        return fail(
          `end_date must be a date from year ${MIN_YEAR} to ${MAX_YEAR}, got ${shown(args.end_date)}`,
        );
      }
      // The last window widens up to a whole bucket anyway, so the current (still filling) bucket may
      // be recomputed; a bucket after it has no rows yet, and its windows would only queue ahead of
      // the scheduled rollups.
      const current = bucketOf(grainOfGranularity[args.granularity], env.now, zone);
      if (end.getTime() > current.end.getTime()) {
        return fail(
          `end_date must not be after the end of the current ${args.granularity} bucket ` +
            `(${current.end.toISOString()}): later buckets have no data yet, got ${shown(args.end_date)}`,
        );
      }
      if (end.getTime() - start.getTime() > MAX_BACKFILL_DAYS * DAY_MS) {
        return fail(
          `end_date must be at most ${MAX_BACKFILL_DAYS} days after start_date, got ${shown(args.end_date)}`,
        );
      }
    });
}

export function cleanupArgs(env: ArgsEnvironment) {
  return z.strictObject({
    retention_days: z
      .number({
        error: (issue) =>
          `retention_days must be a whole number of days from 1 to 36500, got ${shown(issue.input)}`,
      })
      .int({
        error: (issue) =>
          `retention_days must be a whole number of days from 1 to 36500, got ${shown(issue.input)}`,
      })
      .min(1, {
        error: (issue) =>
          `retention_days must be a whole number of days from 1 to 36500, got ${shown(issue.input)}`,
      })
      .max(36500, {
        error: (issue) =>
          `retention_days must be a whole number of days from 1 to 36500, got ${shown(issue.input)}`,
      })
      .default(env.settings.retentionDays),
  });
}

export function noArgs() {
  return z.strictObject({});
}

/**
 * Validates a task's arguments given Celery-style (`args` positional, `kwargs` by name), and returns
 * the keyword object the task runs with. Throws InvalidTaskArgsError naming each bad field and its rule.
 */
export function parseTaskArgs(
  task: AnyTaskDefinition,
  input: { args?: readonly unknown[]; kwargs?: Record<string, unknown> },
  env: ArgsEnvironment,
): Record<string, unknown> {
  const kwargs: Record<string, unknown> = { ...(input.kwargs ?? {}) };
  const positional = input.args ?? [];
  if (positional.length > task.positional.length) {
    throw new InvalidTaskArgsError(task.name, [
      {
        field: 'args',
        message: `args must have at most ${task.positional.length} value(s) (${task.positional.join(', ') || 'none'}), got ${positional.length}`,
      },
    ]);
  }
  positional.forEach((value, i) => {
    const name = task.positional[i] ?? '';
    if (name in kwargs) {
      throw new InvalidTaskArgsError(task.name, [
        { field: name, message: `${name} must be given once, got it both in args and kwargs` },
      ]);
    }
    kwargs[name] = value;
  });
  // `null` is Python's None: the argument is absent.
  for (const [k, v] of Object.entries(kwargs)) if (v === null || v === undefined) delete kwargs[k];
  const result = task.schema(env).safeParse(kwargs);
  if (result.success) {
    const nul = findNul(result.data, []);
    if (nul !== undefined) {
      // PostgreSQL stores no U+0000 in text or jsonb: refused here, not by the database later.
      throw new InvalidTaskArgsError(task.name, [
        { field: nul, message: `${nul} must not contain the NUL character (U+0000)` },
      ]);
    }
    return result.data as Record<string, unknown>;
  }
  throw new InvalidTaskArgsError(
    task.name,
    result.error.issues.map((issue) => ({
      field: issue.path.join('.') || '(arguments)',
      message:
        issue.code === 'unrecognized_keys'
          ? `unknown argument(s) ${issue.keys.join(', ')}: ${task.name} takes ${task.positional.join(', ') || 'no arguments'}`
          : issue.message,
    })),
  );
}

/** The path of the first string (or key) holding U+0000 in a JSON-like value, if any. */
function findNul(value: unknown, path: string[]): string | undefined {
  const here = (): string => path.join('.') || '(arguments)';
  if (typeof value === 'string') return value.includes('\u0000') ? here() : undefined;
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) {
      const found = findNul(v, [...path, String(i)]);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (k.includes('\u0000')) return here();
      const found = findNul(v, [...path, k]);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}
