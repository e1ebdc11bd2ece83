import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseSettings } from '../../src/config/index.ts';
import { builtinRollups, cleanupOldData, defaultSources, prepareDatabase } from '../../src/rollups/index.ts';
import { MAX_ROW_SIZED_WINDOW_DAYS, windowDaysByRows } from '../../src/tasks/index.ts';
import { healthReport } from '../support/health.ts';
import { createPartitionedTestDatabase } from '../support/partitioned-database.ts';
import { compareWithOracle, frozenAfterCleanup } from '../support/oracle.ts';
import { refreshAll } from '../support/rollup-helpers.ts';
import { runCli } from '../cli/cli-runner.ts';
import type { TestDatabase } from '../support/database.ts';

const ZONE = 'Asia/Kolkata';
const DAY = 86_400_000;
const today = Math.floor(Date.now() / DAY) * DAY;
const utc = (t: number): string => new Date(t).toISOString();
/** `<table>_p<yyyymmdd>` of the UTC day `offset` days from today. */
const dayName = (table: string, offset: number): string =>
  `${table}_p${utc(today + offset * DAY)
    .slice(0, 10)
    .replaceAll('-', '')}`;

/** Each partition of `table` with its bounds in UTC (null: MINVALUE), oldest first; and the table's kind. */
async function layout(
  db: TestDatabase,
  table: string,
): Promise<{
  kind: string | undefined;
  partitions: Array<{ name: string; from: string | null; to: string }>;
}> {
  const client = await db.pool.connect();
  try {
    await client.query("SET TIME ZONE 'UTC'");
    const { rows: kind } = await client.query<{ kind: string }>(
      'SELECT relkind AS kind FROM pg_class WHERE oid = to_regclass($1)',
      [table],
    );
    const { rows } = await client.query<{ name: string; bound: string }>(
      `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass($1)`,
      [table],
    );
    const partitions = rows
      .map((r) => {
        const m = /FROM \((?:'([^']+)'|MINVALUE)\) TO \('([^']+)'\)/.exec(r.bound);
        if (m === null) throw new Error(`unexpected bound ${r.bound}`);
        const iso = (s: string): string => new Date(s.replace(' ', 'T').replace('+00', 'Z')).toISOString();
        return { name: r.name, from: m[1] === undefined ? null : iso(m[1]), to: iso(m[2] ?? '') };
      })
      .sort((a, b) => (a.from === null ? -1 : b.from === null ? 1 : a.from.localeCompare(b.from)));
    return { kind: kind[0]?.kind, partitions };
  } finally {
    await client.query('RESET TIME ZONE');
    client.release();
  }
}

async function insertExecutions(db: TestDatabase, daysAgo: number[]): Promise<void> {
  for (const [i, d] of daysAgo.entries())
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       VALUES ($1, $2, 1, 'success', now() - $3::float8 * interval '1 day' - make_interval(mins => $4), 100 + $4, 1.5)`,
      [1 + (i % 3), 1 + (i % 5), d, i],
    );
  for (const [i, d] of daysAgo.entries())
    await db.pool.query(
      `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at)
       VALUES ($1, $2, 'login', now() - $3::float8 * interval '1 day' - make_interval(mins => $4))`,
      [1 + (i % 3), 1 + (i % 5), d, i],
    );
}

describe('SOURCE_PARTITIONS=day: aggjobs migrate creates the sources partitioned', () => {
  it('creates execution logs and activity events partitioned by day over the retention, plus the lead', async () => {
    const db = await createPartitionedTestDatabase('', {
      env: { SOURCE_PARTITIONS: 'day', RETENTION_DAYS: '10', PARTITION_LEAD_DAYS: '3' },
    });
    for (const [table, column] of [
      ['public.execution_logs', 'started_at'],
      ['public.user_activity_events', 'occurred_at'],
    ] as const) {
      const { kind, partitions } = await layout(db, table);
      expect(kind).toBe('p');
      const bare = table.slice('public.'.length);
      // Below: one MINVALUE partition up to the day that holds now - 10 days; then one a day.
      const first = today - 10 * DAY;
      expect(partitions[0]).toEqual({ name: `${bare}_older`, from: null, to: utc(first) });
      const days = partitions.slice(1);
      days.forEach((p, i) => {
        expect(p.from).toBe(utc(first + i * DAY));
        expect(p.to).toBe(utc(first + (i + 1) * DAY));
      });
      expect(days[0]?.name).toBe(dayName(bare, -10));
      // At least 3 days ahead of now (the lead), continued by ensureFuturePartitions.
      expect(Date.parse(days.at(-1)?.to ?? '')).toBeGreaterThanOrEqual(Date.now() + 3 * DAY);
      // The primary key includes the time column; change capture sits on the parent.
      const { rows: key } = await db.pool.query<{ def: string }>(
        `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'`,
        [table],
      );
      expect(key[0]?.def).toBe(`PRIMARY KEY (id, ${column})`);
      const { rows: triggers } = await db.pool.query<{ name: string }>(
        `SELECT tgname AS name FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname LIKE 'aggjobs%' ORDER BY 1`,
        [table],
      );
      expect(triggers.map((t) => t.name)).toEqual([
        'aggjobs_log_deletes',
        'aggjobs_log_moves',
        'aggjobs_log_replicated',
        'aggjobs_log_truncate',
        'aggjobs_stamp_xid',
      ]);
    }
    // Credit transactions are a ledger retention never cleans: left a plain table.
    expect((await layout(db, 'public.credit_transactions')).kind).toBe('r');

    // Rows over the whole window, a late one older than the retention (into the MINVALUE partition)
    // and one in tomorrow's partition; then rollups equal the plain GROUP BY.
    await insertExecutions(db, [0, 0.5, 1, 2, 3, 5, 8, 9.5, 12, 25, -0.9]);
    const { rows: older } = await db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM public.execution_logs_older',
    );
    expect(older[0]?.n).toBe(2);
    await refreshAll(db.pool, ZONE);
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);

    // Backfill windows by rows: partitions that hold rows but were never analyzed give no estimate
    // (the fixed cut); once analyzed (ANALYZE of the parent takes its partitions), an estimate.
    const backfill = {
      start_date: new Date(today - 10 * DAY).toISOString().slice(0, 10),
      end_date: new Date(today).toISOString().slice(0, 10),
      granularity: 'hourly' as const,
    };
    expect(await windowDaysByRows(db.pool, 'hour', backfill, ZONE)).toBeUndefined();
    for (const table of ['execution_logs', 'user_activity_events', 'credit_transactions']) {
      await db.pool.query(`ANALYZE public.${table}`);
    }
    expect(await windowDaysByRows(db.pool, 'hour', backfill, ZONE)).toBe(MAX_ROW_SIZED_WINDOW_DAYS);

    // A second migrate with the same setting changes nothing.
    const before = await layout(db, 'public.execution_logs');
    const again = await prepareDatabase(
      db.pool,
      parseSettings({ SOURCE_PARTITIONS: 'day', RETENTION_DAYS: '10', PARTITION_LEAD_DAYS: '3' }),
    );
    expect(again.sourcesCreated).toEqual([]);
    expect(await layout(db, 'public.execution_logs')).toEqual(before);

    // Retention of 5 days drops the MINVALUE partition and the days before the cutoff, no row
    // deleted one by one, and keeps a MINVALUE partition below the oldest day kept: a late row 30
    // days old is still accepted (and frozen: no rollup reads it).
    const result = await cleanupOldData(db.pool, builtinRollups, {
      retentionDays: 5,
      sources: defaultSources,
      rollupRetentionFactor: 2,
      batchSize: 50,
    });
    const watermark = Math.floor(Date.parse(result.sourceCutoff) / DAY) * DAY;
    expect(result.deleted['public.execution_logs']).toBe(0);
    expect(result.partitions['public.execution_logs']?.dropped).toEqual([
      'public.execution_logs_older',
      ...Array.from(
        { length: (watermark - (today - 10 * DAY)) / DAY },
        (_, i) => `public.${dayName('execution_logs', -10 + i)}`,
      ),
    ]);
    const after = await layout(db, 'public.execution_logs');
    expect(after.partitions[0]).toEqual({ name: 'execution_logs_older', from: null, to: utc(watermark) });
    expect(after.partitions[1]?.from).toBe(utc(watermark));
    await insertExecutions(db, [30]);
    await refreshAll(db.pool, ZONE);
    expect(await compareWithOracle(db.pool, ZONE, { frozenBefore: frozenAfterCleanup(result) })).toEqual([]);
  });

  it('week: partitions start on Mondays (UTC) and ahead partitions continue a week wide', async () => {
    const db = await createPartitionedTestDatabase('', {
      env: { SOURCE_PARTITIONS: 'week', RETENTION_DAYS: '20', PARTITION_LEAD_DAYS: '10' },
    });
    const { partitions } = await layout(db, 'public.user_activity_events');
    expect(partitions[0]?.from).toBeNull();
    const weeks = partitions.slice(1);
    for (const p of weeks) {
      expect(new Date(p.from ?? '').getUTCDay()).toBe(1);
      expect(Date.parse(p.to) - Date.parse(p.from ?? '')).toBe(7 * DAY);
    }
    expect(Date.parse(weeks[0]?.from ?? '')).toBeLessThanOrEqual(Date.now() - 20 * DAY);
    expect(Date.parse(weeks[0]?.from ?? '')).toBeGreaterThan(Date.now() - 27 * DAY);
    expect(Date.parse(weeks.at(-1)?.to ?? '')).toBeGreaterThanOrEqual(Date.now() + 10 * DAY);
    await insertExecutions(db, [0, 3, 9, 15, 19]);
    await refreshAll(db.pool, 'UTC');
    expect(await compareWithOracle(db.pool, 'UTC')).toEqual([]);
  });

  it('refuses a source that exists as a plain table, naming it, and writes nothing', async () => {
    const db = await createPartitionedTestDatabase(
      'CREATE TABLE public.execution_logs (id bigserial PRIMARY KEY, started_at timestamptz NOT NULL)',
      { migrate: false },
    );
    const attempt = prepareDatabase(db.pool, parseSettings({ SOURCE_PARTITIONS: 'day' }));
    await expect(attempt).rejects.toBeInstanceOf(ConfigError);
    await expect(attempt).rejects.toThrow(
      /^SOURCE_PARTITIONS must be none while public\.execution_logs exists and is not range-partitioned by started_at .*nothing was changed, got "day"$/,
    );
    // The other source, missing, was not created either; no migration ran.
    const { rows } = await db.pool.query<{ events: string | null; ledger: string | null }>(
      `SELECT to_regclass('public.user_activity_events')::text AS events,
              to_regclass('aggjobs.schema_migrations')::text AS ledger`,
    );
    expect(rows[0]).toEqual({ events: null, ledger: null });
  });

  it('aggjobs migrate says what it created; a bad value is refused naming the variable', async () => {
    const db = await createPartitionedTestDatabase('', { migrate: false });
    const ok = await runCli(['migrate'], {
      DATABASE_URL: db.url,
      SOURCE_PARTITIONS: 'day',
      RETENTION_DAYS: '3',
      LOG_FORMAT: 'json',
    });
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(
      /created public\.execution_logs partitioned by day \(SOURCE_PARTITIONS\) with 6 partition\(s\), public\.execution_logs_older to public\.execution_logs_p\d{8}/,
    );
    expect(ok.stdout).toMatch(/created public\.user_activity_events partitioned by day/);
    const bad = await runCli(['migrate'], { DATABASE_URL: db.url, SOURCE_PARTITIONS: 'hourly' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('aggjobs: SOURCE_PARTITIONS must be one of none, day, week, got "hourly"\n');
  });
});

describe('a partition left half-detached by an interrupted cleanup', () => {
  it('shows as degraded in health, naming it, and the next cleanup finishes and drops it', async () => {
    const db = await createPartitionedTestDatabase('', {
      env: { SOURCE_PARTITIONS: 'day', RETENTION_DAYS: '10' },
    });
    const health = async (): Promise<{ status: string; detail: string } | undefined> =>
      (
        await healthReport(db.pool, {
          partitions: { tables: defaultSources.map((s) => s.table), leadDays: 7 },
        })
      ).checks.partitions;
    expect((await health())?.status).toBe('healthy');
    const victim = dayName('execution_logs', -9);
    // A reader's transaction holds the partition; the detach marks it pending, commits, then waits
    // for that reader; it is cancelled there, as a cleanup killed mid-detach would be.
    const reader = new pg.Client({ connectionString: db.url });
    const detacher = new pg.Client({ connectionString: db.url });
    await reader.connect();
    await detacher.connect();
    try {
      const { rows: me } = await detacher.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await reader.query('SELECT count(*) FROM public.execution_logs');
      const detach = detacher
        .query(`ALTER TABLE public.execution_logs DETACH PARTITION public.${victim} CONCURRENTLY`)
        .catch((error: unknown) => error);
      const pending = async (): Promise<boolean> =>
        (
          await db.pool.query<{ pending: boolean }>(
            'SELECT inhdetachpending AS pending FROM pg_inherits WHERE inhrelid = to_regclass($1)',
            [`public.${victim}`],
          )
        ).rows[0]?.pending === true;
      for (let i = 0; i < 100 && !(await pending()); i += 1) await new Promise((r) => setTimeout(r, 100));
      expect(await pending()).toBe(true);
      await db.pool.query('SELECT pg_cancel_backend($1)', [me[0]?.pid]);
      expect(String(await detach)).toMatch(/canceling statement due to user request/);
      await reader.query('ROLLBACK');
    } finally {
      await reader.end();
      await detacher.end();
    }
    const half = await health();
    expect(half?.status).toBe('degraded');
    expect(half?.detail).toContain(
      `public.execution_logs: partition(s) public.${victim} half-detached by an interrupted cleanup (the next cleanup finishes them)`,
    );
    const result = await cleanupOldData(db.pool, builtinRollups, {
      retentionDays: 5,
      sources: defaultSources,
      rollupRetentionFactor: 2,
      batchSize: 50,
    });
    expect(result.partitions['public.execution_logs']?.dropped).toContain(`public.${victim}`);
    const { rows } = await db.pool.query<{ gone: boolean }>('SELECT to_regclass($1) IS NULL AS gone', [
      `public.${victim}`,
    ]);
    expect(rows[0]?.gone).toBe(true);
    expect((await health())?.status).toBe('healthy');
  });
});
