import { describe, expect, it } from 'vitest';
import { parseSettings } from '../config/index.ts';
import { parseTaskArgs } from './task-args.ts';
import { taskRegistry } from './task-registry.ts';
import type { AnyTaskDefinition } from './task-definition.ts';
import { InvalidTaskArgsError } from './task-errors.ts';

const env = {
  settings: parseSettings({ ANALYTICS_TIMEZONE: 'Europe/Berlin' }),
  now: new Date('2025-01-10T12:00:00Z'),
};
const task = (name: keyof typeof taskRegistry): AnyTaskDefinition => taskRegistry[name] as AnyTaskDefinition;

function problem(name: keyof typeof taskRegistry, input: Parameters<typeof parseTaskArgs>[1]): string {
  try {
    parseTaskArgs(task(name), input, env);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidTaskArgsError);
    return (error as Error).message;
  }
  throw new Error('expected the arguments to be rejected');
}

describe('task arguments', () => {
  it('accepts the seed’s calls, positional or by keyword', () => {
    expect(parseTaskArgs(task('hourly_rollup'), { args: ['2025-01-09T14:00:00'] }, env)).toEqual({
      target_hour: '2025-01-09T14:00:00',
    });
    expect(parseTaskArgs(task('daily_rollup'), { args: [null] }, env)).toEqual({});
    expect(
      parseTaskArgs(
        task('backfill_aggregations'),
        {
          kwargs: {
            start_date: '2025-01-01T00:00:00',
            end_date: '2025-01-09T00:00:00',
            granularity: 'hourly',
          },
        },
        env,
      ),
    ).toMatchObject({ granularity: 'hourly' });
    expect(parseTaskArgs(task('cleanup_old_data'), {}, env)).toEqual({ retention_days: 90 });
  });

  it.each([
    [
      'hourly_rollup',
      { args: ['yesterday'] },
      /target_hour must be an ISO date or date-time such as 2025-01-09T14:00:00, got "yesterday"/,
    ],
    ['hourly_rollup', { args: ['2025-02-30T10:00:00'] }, /target_hour must be an ISO date/],
    ['hourly_rollup', { args: [20250109] }, /target_hour must be an ISO date .*got 20250109/],
    ['daily_rollup', { args: ['99999-01-01'] }, /target_date must be a date from year 2000 to 2100/],
    ['daily_rollup', { args: ['2025-02-01'] }, /target_date must not be in the future/],
    [
      'daily_rollup',
      { args: ['2024-01-01'] },
      /target_date must be within the retention period \(the last 90 days/,
    ],
    [
      'cleanup_old_data',
      { args: [Number.NaN] },
      /retention_days must be a whole number of days from 1 to 36500, got NaN/,
    ],
    ['cleanup_old_data', { args: [0] }, /retention_days must be a whole number/],
    ['cleanup_old_data', { args: ['90'] }, /retention_days must be a whole number.*got "90"/],
    [
      'health_check',
      { kwargs: { verbose: true } },
      /unknown argument\(s\) verbose: health_check takes no arguments/,
    ],
    [
      'hourly_rollup',
      { args: ['2025-01-09T14:00:00'], kwargs: { target_hour: '2025-01-09T15:00:00' } },
      /given once/,
    ],
    [
      'backfill_aggregations',
      { kwargs: { start_date: '2025-01-09', end_date: '2025-01-01', granularity: 'hourly' } },
      /end_date must be after start_date \(2025-01-09\), got "2025-01-01"/,
    ],
    [
      'backfill_aggregations',
      { kwargs: { start_date: '2025-01-01', end_date: '2025-01-09', granularity: 'minutely' } },
      /granularity must be one of hourly, daily, weekly, monthly, got "minutely"/,
    ],
    [
      'backfill_aggregations',
      { kwargs: { start_date: '2025-01-01', end_date: '2036-01-01', granularity: 'daily' } },
      /end_date must not be after the end of the current daily bucket \(2025-01-10T23:00:00.000Z\): later buckets have no data yet, got "2036-01-01"/,
    ],
    [
      'backfill_aggregations',
      { kwargs: { start_date: '2025-01-10', end_date: '2025-01-10T14:00:01', granularity: 'hourly' } },
      /end_date must not be after the end of the current hourly bucket \(2025-01-10T13:00:00.000Z\)/,
    ],
    [
      'backfill_aggregations',
      { kwargs: { start_date: '2024-10-01', end_date: '2025-01-09', granularity: 'hourly' } },
      /start_date must be within the retention period \(the last 90 days, RETENTION_DAYS\), got "2024-10-01"/,
    ],
    [
      'backfill_aggregations',
      { kwargs: { start_date: '2025-01-01', granularity: 'daily' } },
      /end_date must be an ISO date.*got nothing/,
    ],
  ] as const)('%s %j is rejected', (name, input, message) => {
    expect(problem(name, input)).toMatch(message);
  });

  it('bounds a backfill by the current bucket of its granularity, and its length', () => {
    // 2025-01-10T12:00Z is 13:00 in Berlin: the current hour ends at 14:00, the week on Monday the 13th.
    const accepted = (end_date: string, granularity: string): unknown =>
      parseTaskArgs(
        task('backfill_aggregations'),
        { kwargs: { start_date: '2025-01-06', end_date, granularity } },
        env,
      );
    expect(accepted('2025-01-10T14:00:00', 'hourly')).toMatchObject({ end_date: '2025-01-10T14:00:00' });
    expect(accepted('2025-01-11', 'daily')).toMatchObject({ end_date: '2025-01-11' });
    expect(accepted('2025-01-13', 'weekly')).toMatchObject({ end_date: '2025-01-13' });
    expect(() => accepted('2025-01-14', 'weekly')).toThrow(
      /end_date must not be after the end of the current weekly bucket/,
    );
    expect(accepted('2025-02-01', 'monthly')).toMatchObject({ end_date: '2025-02-01' });

    const longRetention = {
      ...env,
      settings: parseSettings({ ANALYTICS_TIMEZONE: 'Europe/Berlin', RETENTION_DAYS: '36500' }),
    };
    expect(() =>
      parseTaskArgs(
        task('backfill_aggregations'),
        { kwargs: { start_date: '2010-01-01', end_date: '2025-01-09', granularity: 'daily' } },
        longRetention,
      ),
    ).toThrow(/end_date must be at most 3660 days after start_date/);
  });
});
