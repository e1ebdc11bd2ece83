/**
 * Steps of the documented commands that build and fill the database and run rollups: migrate, db,
 * demo data, run, backfill, rebuild (the table of steps is doc-command-effects.ts). Rollups are
 * compared with the plain GROUP BY oracle; migration files are hashed here.
 */
import { expect } from 'vitest';
import { assertRollupsMatchOracle, oracleQueries } from '../support/oracle.ts';
import {
  DAY,
  HOUR,
  count,
  finishedRun,
  hourly,
  json,
  ledger,
  migrationFiles,
  ok,
  one,
  runRow,
  zone,
  type Step,
} from './doc-command-support.ts';

/** `aggjobs migrate` on an empty database: every migration recorded, rollups and views installed. */
export const migrate: Step = async ({ pool, run, repo }) => {
  const tablesBefore = await count(pool, 'pg_tables', "schemaname IN ('aggjobs', 'analytics')");
  expect(tablesBefore).toBe(0);
  const first = await run();
  ok(first, 'aggjobs migrate');
  const files = migrationFiles(repo);
  expect(files.length).toBeGreaterThan(0);
  expect(await ledger(pool)).toEqual(files);
  const { rows: tables } = await pool.query<{ t: string }>(
    "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'analytics'",
  );
  expect(tables.map((r) => r.t)).toEqual(expect.arrayContaining(Object.keys(oracleQueries)));
  // The three views docs/engine.md describes.
  const { rows: views } = await pool.query<{ v: string }>(
    "SELECT matviewname AS v FROM pg_matviews WHERE schemaname = 'analytics' ORDER BY 1",
  );
  expect(views.map((r) => r.v)).toEqual([
    'mv_daily_user_metrics',
    'mv_hourly_execution_stats',
    'mv_workspace_summary',
  ]);
  // Again: nothing to do, nothing recorded twice.
  const appliedAt = await pool.query('SELECT version, applied_at FROM aggjobs.schema_migrations');
  const second = await run();
  ok(second, 'aggjobs migrate (again)');
  expect(second.stdout).toMatch(/database is up to date/);
  expect((await pool.query('SELECT version, applied_at FROM aggjobs.schema_migrations')).rows).toEqual(
    appliedAt.rows,
  );
};

export const migrateStatus: Step = async ({ pool, run, repo }) => {
  const result = await run();
  ok(result, 'aggjobs migrate --status');
  const { rows } = await pool.query<{ version: number; name: string; applied_at: Date }>(
    'SELECT version, name, applied_at FROM aggjobs.schema_migrations ORDER BY version',
  );
  const lines = result.stdout.trim().split('\n');
  expect(lines).toHaveLength(migrationFiles(repo).length);
  for (const [i, m] of migrationFiles(repo).entries()) {
    const appliedAt = rows.find((r) => r.version === m.version)?.applied_at.toISOString();
    expect(lines[i]?.split(/\s+/)).toEqual([
      String(m.version).padStart(6, '0'),
      m.name,
      'applied',
      appliedAt,
    ]);
  }
};

export const dbUrl: Step = async ({ run, url }) => {
  const result = await run();
  ok(result, 'aggjobs db url');
  expect(result.stdout).toBe(`${url}\n`);
};

export const dbPsql: Step = async ({ pool, run }) => {
  const n = await count(pool, 'analytics.execution_metrics_daily');
  expect(n).toBeGreaterThan(0); // after the rebuild step
  const result = await run();
  ok(result, 'aggjobs db psql');
  expect(result.stdout.split('\n').map((l) => l.trim())).toEqual([
    'count',
    '-------',
    String(n),
    '(1 row)',
    '',
    '',
  ]);
};

export const demoSeed: Step = async ({ pool, run }) => {
  expect(await count(pool, 'public.execution_logs')).toBe(0);
  const started = Date.now();
  const result = await run(); // substituted: 1 day of 1,000 executions
  ok(result, 'aggjobs demo seed');
  const [executions, events, credits] = [
    await count(pool, 'public.execution_logs'),
    await count(pool, 'public.user_activity_events'),
    await count(pool, 'public.credit_transactions'),
  ];
  expect(executions).toBe(1000);
  const said = /seeded ([\d,]+) executions, ([\d,]+) activity events and ([\d,]+) credit transactions/.exec(
    result.stdout,
  );
  expect(said?.slice(1).map((n) => Number(n.replaceAll(',', '')))).toEqual([executions, events, credits]);
  expect(events).toBeGreaterThan(0);
  expect(credits).toBeGreaterThan(0);
  // One day up to now (late rows aside: a few per cent, older), --workspaces 1000, --users 20000.
  const shape = await one<{ recent: number; ws: number; users: number; done: number }>(
    pool,
    `SELECT count(*) FILTER (WHERE started_at >= $1 AND started_at <= now())::int AS recent,
            max(workspace_id)::int AS ws, max(user_id)::int AS users,
            count(*) FILTER (WHERE status <> 'running')::int AS done
     FROM public.execution_logs`,
    [new Date(started - DAY - HOUR)],
  );
  expect(shape.recent).toBeGreaterThanOrEqual(900);
  expect(shape.ws).toBeLessThanOrEqual(1000);
  expect(shape.users).toBeLessThanOrEqual(20000);
  expect(shape.done).toBeGreaterThan(0);
};

export const demoTraffic: Step = async ({ pool, run }) => {
  const before = await count(pool, 'public.execution_logs');
  const result = await run(); // substituted: --rate 50 --duration 3
  ok(result, 'aggjobs demo traffic');
  const said = /traffic: ([\d,]+) writes in ([\d.]+) s .*: ([\d,]+) inserts, .* (\d+) errors/.exec(
    result.stdout,
  );
  expect(said, result.stdout).not.toBeNull();
  const [writes, seconds, inserts, errors] = (said?.slice(1) ?? []).map((n) => Number(n.replaceAll(',', '')));
  // About 50 writes a second for 3 s (150): at least half of that on a loaded machine, never far more.
  expect(seconds).toBeGreaterThanOrEqual(2.9);
  expect(result.elapsedMs).toBeGreaterThanOrEqual(2900);
  expect(writes).toBeGreaterThanOrEqual(75);
  expect(writes).toBeLessThanOrEqual(200);
  expect(errors).toBe(0);
  expect(inserts).toBeGreaterThan(0);
  expect(await count(pool, 'public.execution_logs')).toBeGreaterThan(before);
};

/** `run … --wait`: one run, succeeded, its result printed; the hourly rollups then equal the oracle. */
export const runHourlyWait: Step = async ({ pool, run }) => {
  const result = await run();
  ok(result, 'aggjobs run hourly_rollup --wait');
  const printed = json<{ runId: string; result: unknown }>(result);
  const row = await runRow(pool, printed.runId);
  expect(row).toMatchObject({ task: 'hourly_rollup', state: 'succeeded', args: {} });
  expect(printed.result).toEqual(row?.result);
  await assertRollupsMatchOracle(pool, zone, { tables: hourly });
  // The change the terminated run had not folded in (controlTerminate) is there.
  expect(await count(pool, 'analytics.execution_metrics_hourly', 'workspace_id = 424242')).toBe(1);
};

/** `run` without --wait: queued and printed at once; the worker then runs it. */
export const runHourly: Step = async ({ pool, run }) => {
  const result = await run();
  ok(result, 'aggjobs run hourly_rollup');
  const printed = json<{ runId: string; task: string; state: string }>(result);
  expect(printed.task).toBe('hourly_rollup');
  expect(['queued', 'running', 'succeeded']).toContain(printed.state);
  expect((await finishedRun(pool, printed.runId)).state).toBe('succeeded');
};

/** The hour two hours ago, as GNU `date -u -d '2 hours ago' +%Y-%m-%dT%H:00:00` prints it. */
function twoHoursAgo(at: number): string {
  return `${new Date(at - 2 * HOUR).toISOString().slice(0, 13)}:00:00`;
}

/** A window run over one hour: its rows, deleted first, come back equal to the oracle. */
export const runHourlyTargetHour: Step = async ({ pool, run }) => {
  const hours = [twoHoursAgo(Date.now())];
  for (const table of hourly) {
    await pool.query(`DELETE FROM analytics.${table} WHERE bucket_start = $1::timestamp AT TIME ZONE 'UTC'`, [
      hours[0],
    ]);
  }
  const result = await run();
  hours.push(twoHoursAgo(Date.now())); // an hour may have begun meanwhile
  ok(result, 'aggjobs run hourly_rollup --arg target_hour=… --wait');
  const printed = json<{ runId: string; result: { window: { start: string; end: string } } }>(result);
  const row = await runRow(pool, printed.runId);
  expect(row?.state).toBe('succeeded');
  const target = String((row?.args as { target_hour?: unknown }).target_hour);
  expect(hours).toContain(target);
  expect(printed.result.window).toEqual({
    start: new Date(`${target}Z`).toISOString(),
    end: new Date(new Date(`${target}Z`).getTime() + HOUR).toISOString(),
  });
  await assertRollupsMatchOracle(pool, zone, { tables: hourly });
};

/** `--eager`: in this process, without a broker (the broker URL here leads nowhere). */
export const runEager: Step = async ({ pool, run }) => {
  const result = await run({ env: { REDIS_URL: 'redis://127.0.0.1:1', CELERY_BROKER_URL: '' } });
  ok(result, 'aggjobs run health_check --eager');
  const printed = json<{ runId: string; result: { status: string; checks: Record<string, unknown> } }>(
    result,
  );
  expect(['healthy', 'degraded', 'unhealthy']).toContain(printed.result.status);
  expect(Object.keys(printed.result.checks)).toEqual(expect.arrayContaining(['database', 'failures']));
  expect(await runRow(pool, printed.runId)).toMatchObject({
    task: 'health_check',
    state: 'succeeded',
    worker: 'eager',
  });
};

/** Two days of hourly buckets, deleted first, rebuilt by the backfill's window runs. */
export const backfill: Step = async ({ pool, run }) => {
  const today = new Date().toISOString().slice(0, 10);
  const start = new Date(Date.parse(today) - 2 * DAY);
  for (const table of hourly) {
    await pool.query(`DELETE FROM analytics.${table} WHERE bucket_start >= $1 AND bucket_start < $2`, [
      start,
      new Date(today),
    ]);
  }
  const result = await run();
  ok(result, 'aggjobs backfill … --wait');
  const printed = json<{
    status: string;
    total: number;
    done: number;
    failed: number;
    backfillId: string;
    range: unknown;
  }>(result);
  expect(printed).toMatchObject({
    status: 'completed',
    failed: 0,
    range: { start: start.toISOString().slice(0, 10), end: today },
  });
  const { rows } = await pool.query<{ start: Date; state: string }>(
    'SELECT window_start AS start, state FROM aggjobs.backfill_windows WHERE backfill_id = $1 ORDER BY 1',
    [printed.backfillId],
  );
  // Windows sized by rows (BACKFILL_WINDOW_DAYS unset): this database's few rows make one window
  // of the whole range [start, today).
  expect(rows).toEqual([{ start, state: 'done' }]);
  expect(printed.done).toBe(rows.length);
  expect(printed.total).toBe(rows.length);
  await assertRollupsMatchOracle(pool, zone, { tables: hourly });
};

/** The daily rollup, damaged first, rebuilt from the source rows. */
export const rebuild: Step = async ({ pool, run }) => {
  await pool.query('DELETE FROM analytics.execution_metrics_daily WHERE workspace_id % 2 = 0');
  await pool.query('UPDATE analytics.execution_metrics_daily SET executions_total = executions_total + 7');
  const result = await run();
  ok(result, 'aggjobs rollups rebuild');
  const [printed] = json<Array<{ rollup: string; sourceRows: number; rowsWritten: number }>>(result);
  await assertRollupsMatchOracle(pool, zone, { tables: ['execution_metrics_daily'] });
  expect(printed?.rollup).toBe('execution_metrics_daily');
  expect(printed?.sourceRows).toBe(await count(pool, 'public.execution_logs'));
  expect(printed?.rowsWritten).toBe(await count(pool, 'analytics.execution_metrics_daily'));
};
