import { describe, expect, it } from 'vitest';
import { createTestDatabase } from '../support/database.ts';
import { testRedisUrl } from '../runtime/runtime-harness.ts';
import { spawnCli } from './cli-process.ts';

/**
 * Bad environment values and bad CLI options, in real `aggjobs` processes: exit code 2, a message
 * naming the variable (or option/field), and nothing written to aggjobs.task_runs. Cases run
 * concurrently (vitest maxConcurrency, 5): each is a process start of about 3 s.
 */
const db = await createTestDatabase();
const base = {
  DATABASE_URL: db.url,
  REDIS_URL: testRedisUrl,
  BROKER_KEY_PREFIX: '{cli-bad-input}',
  LOG_LEVEL: 'warn',
};

async function runCount(): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM aggjobs.task_runs');
  return rows[0]?.n ?? -1;
}

const badEnv: Array<[string, string]> = [
  ['HOURLY_ROLLUP_ENABLED', 'maybe'],
  ['RETENTION_DAYS', 'NaN'],
  ['RETENTION_DAYS', '-1'],
  ['RETENTION_DAYS', '99999999999999999999'],
  ['DB_POOL_MAX', '0'],
  ['ANALYTICS_TIMEZONE', "Mars/Olympus'; DROP TABLE x; --"],
  ['APP_ENV', 'prod'],
  ['LOG_LEVEL', 'loud'],
  ['REDIS_URL', 'http://127.0.0.1:6379'],
  ['DATABASE_URL', 'not a url'],
  ['ROLLUP_STATEMENT_TIMEOUT_MS', '1e400'],
  ['CLEANUP_BATCH_SIZE', '1.5'],
  ['TASK_TIME_LIMITS', 'hourly_rollup=abc'],
  ['DASHBOARD_PORT', '99999'],
];

describe('environment values', () => {
  it.concurrent.each(badEnv)('%s=%j: exit 2, the variable named, nothing written', async (name, value) => {
    const before = await runCount();
    const cli = spawnCli(['run', 'health_check'], { ...base, [name]: value });
    const code = await cli.exited;
    expect(code, cli.output()).toBe(2);
    expect(cli.output()).toContain(name);
    expect(cli.output()).not.toMatch(/\n\s+at /); // a message, not a stack trace
    expect(await runCount()).toBe(before);
  });
});

const badOptions: Array<[string, string[], RegExp]> = [
  [
    'a date in year 99999',
    ['run', 'hourly_rollup', '--arg', 'target_hour=99999-01-01T00:00:00'],
    /target_hour/,
  ],
  [
    'SQL as a date',
    ['run', 'daily_rollup', '--arg', "target_date=2025-01-01'; DROP TABLE aggjobs.task_runs; --"],
    /target_date/,
  ],
  ['NaN retention', ['run', 'cleanup_old_data', '--arg', 'retention_days=NaN'], /retention_days/],
  ['an unknown argument', ['run', 'health_check', '--arg', 'evil=1'], /evil|unknown|unrecognized/i],
  ['an unknown task', ['run', 'no_such_task'], /no_such_task/],
  [
    'a huge backfill range',
    ['backfill', '--start', '0001-01-01', '--end', '9999-12-31', '--granularity', 'hourly'],
    /start|range|retention/i,
  ],
  [
    'an unknown granularity',
    ['backfill', '--start', '2026-11-01', '--end', '2026-11-02', '--granularity', 'yearly'],
    /granularity/,
  ],
  ['concurrency 0', ['worker', '-c', '0'], /concurrency/i],
  ['concurrency abc', ['worker', '-c', 'abc'], /concurrency/i],
  ['autoscale reversed', ['worker', '--autoscale', '2,8'], /autoscale/i],
  ['an unknown queue', ['worker', '-Q', 'aggregation,evil'], /evil|queue/i],
  ['traffic rate 0', ['demo', 'traffic', '--rate', '0'], /rate/],
  ['an unknown state', ['control', 'runs', '--state', "x' OR 1=1"], /state/],
];

describe('CLI options', () => {
  it.concurrent.each(badOptions)(
    '%s: exit 2 with the option or field named, nothing written',
    async (_what, args, named) => {
      const before = await runCount();
      const cli = spawnCli(args, base, 55_000);
      const code = await cli.exited;
      expect(code, cli.output()).toBe(2);
      expect(cli.output()).toMatch(named);
      expect(await runCount()).toBe(before);
    },
  );
});
