import pg from 'pg';
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  builtinRollups,
  installRollups,
  refreshMaterializedViews,
  refreshRollup,
  RefreshAbortedError,
  type RollupDefinition,
} from '../../src/rollups/index.ts';
import { seedDemoData } from '../../src/workload/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { compareWithOracle } from '../support/oracle.ts';
import { refreshAll, resetData } from '../support/rollup-helpers.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
beforeEach(async () => {
  await resetData(db.pool);
});

const hourly = builtinRollups.find((d) => d.name === 'execution_metrics_hourly') as RollupDefinition;
const daily = builtinRollups.find((d) => d.name === 'execution_metrics_daily') as RollupDefinition;

async function insertExecution(at: string, ws = 1, extra = ''): Promise<void> {
  await db.pool.query(
    `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms ${extra ? ', credits_used' : ''})
     VALUES ($1, 1, 1, 'success', $2, 10 ${extra ? `, ${extra}` : ''})`,
    [ws, at],
  );
}

describe('time zones', () => {
  it('gives a 23-hour and a 25-hour day one daily bucket each, holding exactly their rows', async () => {
    const zone = 'Europe/Berlin';
    // 2026-03-29 is 23 hours long in Berlin, 2026-10-25 is 25 hours long. One row per UTC hour.
    await db.pool.query(`
      INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at)
      SELECT 1, 1, 1, 'success', t FROM generate_series(timestamptz '2026-03-28 20:00Z', timestamptz '2026-03-30 04:00Z', interval '1 hour') t
      UNION ALL
      SELECT 1, 1, 1, 'success', t FROM generate_series(timestamptz '2026-10-24 20:00Z', timestamptz '2026-10-26 04:00Z', interval '1 hour') t`);
    await refreshRollup(db.pool, daily, { timezone: zone, mode: { kind: 'incremental' } });
    const { rows } = await db.pool.query<{ day: string; n: number }>(
      `SELECT to_char(bucket_start AT TIME ZONE $1, 'YYYY-MM-DD HH24:MI') AS day, executions_total AS n
       FROM analytics.execution_metrics_daily ORDER BY bucket_start`,
      [zone],
    );
    expect(rows).toContainEqual({ day: '2026-03-29 00:00', n: 23 });
    expect(rows).toContainEqual({ day: '2026-10-25 00:00', n: 25 });
    expect(await compareWithOracle(db.pool, zone, { tables: ['execution_metrics_daily'] })).toEqual([]);
  });
});

describe('change capture', () => {
  it('holds the horizon behind a long-open transaction and loses nothing when it commits', async () => {
    await refreshAll(db.pool, 'UTC');
    const app = new pg.Client({ connectionString: db.url });
    await app.connect();
    try {
      await app.query('BEGIN');
      await app.query(
        `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at) VALUES (7, 1, 1, 'success', now() - interval '5 hours')`,
      );
      await insertExecution(new Date().toISOString(), 8); // committed meanwhile, by another transaction
      const first = await refreshRollup(db.pool, hourly, { timezone: 'UTC', mode: { kind: 'incremental' } });
      expect(first.groupsRecomputed).toBe(1); // workspace 8's row; workspace 7's is not visible yet
      const { rows: held } = await db.pool.query<{ holding: boolean }>(
        `SELECT horizon <= (SELECT backend_xid::text::xid8 FROM pg_stat_activity WHERE pid = $1) AS holding
         FROM aggjobs.rollup_state WHERE rollup = $2`,
        [(await app.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid, hourly.name],
      );
      expect(held[0]?.holding).toBe(true);
      await app.query('COMMIT');
    } finally {
      await app.end();
    }
    await refreshRollup(db.pool, hourly, { timezone: 'UTC', mode: { kind: 'incremental' } });
    expect(await compareWithOracle(db.pool, 'UTC', { tables: [hourly.name] })).toEqual([]);
    const { rows } = await db.pool.query(
      'SELECT 1 FROM analytics.execution_metrics_hourly WHERE workspace_id = 7',
    );
    expect(rows).toHaveLength(1);
  });

  it('recomputes only the groups that changed, and reports what it did', async () => {
    await db.pool.query(`
      INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at)
      SELECT ws, 1, 1, 'success', timestamptz '2026-01-01' + make_interval(hours => h)
      FROM generate_series(0, 99) h, generate_series(1, 10) ws`);
    const initial = await refreshRollup(db.pool, hourly, { timezone: 'UTC', mode: { kind: 'incremental' } });
    expect(initial).toMatchObject({
      mode: 'initial',
      groupsRecomputed: 1000,
      rowsWritten: 1000,
      rowsDeleted: 0,
    });
    expect(initial.horizon).toMatch(/^\d+$/);
    await db.pool.query(
      `UPDATE public.execution_logs SET status = 'failed' WHERE workspace_id = 3 AND started_at = '2026-01-02 05:00Z'`,
    );
    await db.pool.query(
      `DELETE FROM public.execution_logs WHERE workspace_id = 4 AND started_at = '2026-01-03 00:00Z'`,
    );
    const next = await refreshRollup(db.pool, hourly, { timezone: 'UTC', mode: { kind: 'incremental' } });
    expect(next).toMatchObject({ mode: 'incremental', groupsRecomputed: 2, rowsWritten: 1, rowsDeleted: 1 });
    const idle = await refreshRollup(db.pool, hourly, { timezone: 'UTC', mode: { kind: 'incremental' } });
    expect(idle).toMatchObject({ groupsRecomputed: 0, rowsWritten: 0, rowsDeleted: 0 });
    expect(await compareWithOracle(db.pool, 'UTC', { tables: [hourly.name] })).toEqual([]);

    // A window counts every group it computed (240 in a day of 10 workspaces: one gone, one new),
    // and writes only what differs: the changed group, the new one; deletes the one left empty.
    await db.pool.query(
      `UPDATE public.execution_logs SET status = 'cancelled' WHERE workspace_id = 5 AND started_at = '2026-01-02 06:00Z'`,
    );
    await db.pool.query(
      `DELETE FROM public.execution_logs WHERE workspace_id = 6 AND started_at = '2026-01-02 07:00Z'`,
    );
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at) VALUES (11, 1, 1, 'success', '2026-01-02 08:00Z')`,
    );
    const day = { start: new Date('2026-01-02T00:00:00Z'), end: new Date('2026-01-03T00:00:00Z') };
    const window = await refreshRollup(db.pool, hourly, {
      timezone: 'UTC',
      mode: { kind: 'window', ...day },
    });
    expect(window).toMatchObject({ mode: 'window', groupsRecomputed: 240, rowsWritten: 2, rowsDeleted: 1 });
    const again = await refreshRollup(db.pool, hourly, { timezone: 'UTC', mode: { kind: 'window', ...day } });
    expect(again).toMatchObject({ mode: 'window', groupsRecomputed: 240, rowsWritten: 0, rowsDeleted: 0 });
    expect(await compareWithOracle(db.pool, 'UTC', { tables: [hourly.name] })).toEqual([]);
  });

  it('a window refresh recomputes whole buckets of the window and reports them', async () => {
    await insertExecution('2026-02-01T10:30:00Z');
    await insertExecution('2026-02-01T11:30:00Z');
    await db.pool.query('TRUNCATE analytics.execution_metrics_hourly');
    const result = await refreshRollup(db.pool, hourly, {
      timezone: 'UTC',
      mode: {
        kind: 'window',
        start: new Date('2026-02-01T10:15:00Z'),
        end: new Date('2026-02-01T11:00:00Z'),
      },
    });
    expect(result.mode).toBe('window');
    expect(result.window?.start).toBe('2026-02-01T10:00:00+00:00');
    expect(result.window?.end).toBe('2026-02-01T11:00:00+00:00');
    const { rows } = await db.pool.query<{ b: Date }>(
      'SELECT bucket_start AS b FROM analytics.execution_metrics_hourly',
    );
    expect(rows.map((r) => r.b.toISOString())).toEqual(['2026-02-01T10:00:00.000Z']);
  });

  it('an already-aborted signal is refused before any statement, writing nothing', async () => {
    // Cancelling mid-statement (the rollback) is the next test's: aborted while its upsert waits on a lock.
    await refreshAll(db.pool, 'UTC');
    await insertExecution('2026-02-01T10:30:00Z');
    const controller = new AbortController();
    controller.abort();
    await expect(
      refreshRollup(db.pool, hourly, {
        timezone: 'UTC',
        mode: { kind: 'incremental' },
        signal: controller.signal,
      }),
    ).rejects.toBeInstanceOf(RefreshAbortedError);
    const { rows } = await db.pool.query('SELECT 1 FROM analytics.execution_metrics_hourly');
    expect(rows).toHaveLength(0);
  });

  it('a refresh cancelled while its statement waits on a lock writes nothing and leaves its state as it was', async () => {
    await insertExecution('2026-02-01T10:30:00Z');
    await refreshAll(db.pool, 'UTC');
    await insertExecution('2026-02-01T10:40:00Z'); // changes the 10:00 group
    await insertExecution('2026-02-01T12:40:00Z'); // a new group
    const state = async (): Promise<unknown> =>
      (
        await db.pool.query('SELECT to_jsonb(s) AS s FROM aggjobs.rollup_state s WHERE rollup = $1', [
          hourly.name,
        ])
      ).rows[0];
    const rollupRows = async (): Promise<unknown[]> =>
      (
        await db.pool.query(
          'SELECT to_jsonb(t) AS t FROM analytics.execution_metrics_hourly t ORDER BY bucket_start',
        )
      ).rows;
    const [stateBefore, rowsBefore] = [await state(), await rollupRows()];

    // The test holds the 10:00 row: the refresh statement's upsert waits for it.
    const holder = await db.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(
        `SELECT FROM analytics.execution_metrics_hourly WHERE bucket_start = '2026-02-01T10:00Z' FOR UPDATE`,
      );
      const holderPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      const controller = new AbortController();
      const refresh = refreshRollup(db.pool, hourly, {
        timezone: 'UTC',
        mode: { kind: 'incremental' },
        signal: controller.signal,
      });
      const outcome = refresh.then(
        () => undefined,
        (error: unknown) => error,
      );
      await vi.waitFor(
        async () => {
          const { rows } = await db.pool.query(
            `SELECT 1 FROM pg_stat_activity
             WHERE $1 = ANY (pg_blocking_pids(pid)) AND wait_event_type = 'Lock' AND query LIKE '%WITH params%'`,
            [holderPid],
          );
          expect(rows).toHaveLength(1);
        },
        { timeout: 10_000, interval: 50 },
      );
      controller.abort();
      const error = await outcome;
      expect(error).toBeInstanceOf(RefreshAbortedError);
      // Cancelled inside the statement (57014 query_canceled), not before it started.
      expect(((error as Error).cause as { code?: string } | undefined)?.code).toBe('57014');
      expect(await state()).toEqual(stateBefore);
      expect(await rollupRows()).toEqual(rowsBefore);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    const next = await refreshRollup(db.pool, hourly, { timezone: 'UTC', mode: { kind: 'incremental' } });
    expect(next).toMatchObject({ mode: 'incremental', groupsRecomputed: 2, rowsWritten: 2 });
    expect(await compareWithOracle(db.pool, 'UTC', { tables: [hourly.name] })).toEqual([]);
  });

  it('a primary key changed together with the time leaves no old group behind (issue 12)', async () => {
    await seedDemoData(db.pool, {
      seed: 12,
      days: 7,
      executionsPerDay: 3_000,
      workspaces: 20,
      users: 100,
      end: new Date('2026-03-01T00:00:00Z'),
    });
    await refreshAll(db.pool, 'America/New_York');
    const { rowCount } = await db.pool.query(
      `UPDATE execution_logs SET id = id + 20000000, started_at = started_at - interval '3 days' WHERE id % 223 = 6`,
    );
    expect(rowCount).toBeGreaterThan(50);
    await refreshAll(db.pool, 'America/New_York');
    const hourlyAndDaily = builtinRollups.map((d) => d.name).filter((n) => /_(hourly|daily)$/.test(n));
    expect(hourlyAndDaily).toContain('execution_metrics_daily');
    expect(await compareWithOracle(db.pool, 'America/New_York', { tables: hourlyAndDaily })).toEqual([]);
  });
});

describe('user-defined rollups', () => {
  it('a 15-minute rollup by workflow is just a definition, and stays exact', async () => {
    const custom: RollupDefinition = {
      name: 'workflow_runs_15m',
      source: 'public.execution_logs',
      timeColumn: 'started_at',
      grain: { minutes: 15 },
      dimensions: [{ column: 'workflow_id', type: 'bigint' }],
      measures: [
        { name: 'runs', type: 'bigint', sql: 'count(*)' },
        { name: 'failures', type: 'bigint', sql: "count(*) FILTER (WHERE status = 'failed')" },
      ],
    };
    await installRollups(db.pool, [...builtinRollups, custom]);
    await refreshRollup(db.pool, custom, { timezone: 'UTC', mode: { kind: 'incremental' } });
    await db.pool.query(`
      INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at)
      SELECT 1, 1, i % 3, CASE WHEN i % 4 = 0 THEN 'failed' ELSE 'success' END, timestamptz '2026-05-01' + make_interval(mins => i * 7)
      FROM generate_series(1, 50) i`);
    await db.pool.query(
      `UPDATE public.execution_logs SET workflow_id = 9 WHERE id IN (SELECT id FROM public.execution_logs ORDER BY id LIMIT 5)`,
    );
    await db.pool.query(
      `DELETE FROM public.execution_logs WHERE id IN (SELECT id FROM public.execution_logs ORDER BY id DESC LIMIT 5)`,
    );
    await refreshRollup(db.pool, custom, { timezone: 'UTC', mode: { kind: 'incremental' } });
    const { rows } = await db.pool.query(`
      (SELECT date_bin('15 minutes', started_at, timestamptz '2000-01-03Z') AS b, workflow_id, count(*) AS runs,
              count(*) FILTER (WHERE status = 'failed') AS failures FROM public.execution_logs GROUP BY 1, 2
       EXCEPT SELECT bucket_start, workflow_id, runs, failures FROM analytics.workflow_runs_15m)
      UNION ALL
      (SELECT bucket_start, workflow_id, runs, failures FROM analytics.workflow_runs_15m
       EXCEPT SELECT date_bin('15 minutes', started_at, timestamptz '2000-01-03Z'), workflow_id, count(*),
              count(*) FILTER (WHERE status = 'failed') FROM public.execution_logs GROUP BY 1, 2)`);
    expect(rows).toEqual([]);
    await db.pool.query('DROP TABLE analytics.workflow_runs_15m');
    await db.pool.query(`DELETE FROM aggjobs.rollup_state WHERE rollup = 'workflow_runs_15m'`);
    await installRollups(db.pool, builtinRollups);
  });

  it('a source whose primary key is not `id` stays exact through key changes and a swap in one statement', async () => {
    // A deferrable key lets one UPDATE swap two keys; the rows also change groups.
    await db.pool.query(`
      CREATE TABLE public.meter_readings (
        tenant int NOT NULL, seq int NOT NULL, meter text NOT NULL, read_at timestamptz NOT NULL, value int NOT NULL,
        PRIMARY KEY (tenant, seq) DEFERRABLE INITIALLY IMMEDIATE);
      INSERT INTO public.meter_readings
      SELECT i % 2, i, 'm' || i % 3, timestamptz '2026-04-01' + make_interval(mins => i * 13), i FROM generate_series(1, 60) i`);
    const meters: RollupDefinition = {
      name: 'meter_hourly',
      source: 'public.meter_readings',
      timeColumn: 'read_at',
      grain: 'hour',
      dimensions: [{ column: 'meter', type: 'text' }],
      measures: [
        { name: 'readings', type: 'bigint', sql: 'count(*)' },
        { name: 'total', type: 'bigint', sql: 'sum(value)' },
      ],
    };
    try {
      await installRollups(db.pool, [meters]);
      await refreshRollup(db.pool, meters, { timezone: 'UTC', mode: { kind: 'incremental' } });
      await db.pool.query(
        `UPDATE public.meter_readings SET seq = seq + 1000, read_at = read_at - interval '2 hours' WHERE seq % 7 = 0`,
      );
      await db.pool.query(
        `UPDATE public.meter_readings SET seq = 1000 - seq WHERE seq % 5 = 1 AND seq < 1000`,
      );
      await db.pool.query(
        `UPDATE public.meter_readings SET seq = CASE seq WHEN 2 THEN 4 ELSE 2 END, meter = 'm9',
           read_at = read_at + interval '1 day' WHERE tenant = 0 AND seq IN (2, 4)`,
      );
      await refreshRollup(db.pool, meters, { timezone: 'UTC', mode: { kind: 'incremental' } });
      const { rows } = await db.pool.query(`
        (SELECT date_trunc('hour', read_at, 'UTC') AS bucket_start, meter, count(*) AS readings, sum(value) AS total
         FROM public.meter_readings GROUP BY 1, 2
         EXCEPT SELECT bucket_start, meter, readings, total FROM analytics.meter_hourly)
        UNION ALL
        (SELECT bucket_start, meter, readings, total FROM analytics.meter_hourly
         EXCEPT SELECT date_trunc('hour', read_at, 'UTC'), meter, count(*), sum(value) FROM public.meter_readings GROUP BY 1, 2)`);
      expect(rows).toEqual([]);
    } finally {
      await db.pool.query(`
        DROP TABLE IF EXISTS analytics.meter_hourly, public.meter_readings;
        DELETE FROM aggjobs.rollup_state WHERE rollup = 'meter_hourly'`);
    }
  });

  it('refuses a source table without a primary key, saying how to fix it', async () => {
    await db.pool.query(
      'CREATE TABLE public.keyless_events (happened_at timestamptz NOT NULL, kind text NOT NULL)',
    );
    const keyless: RollupDefinition = {
      name: 'keyless_hourly',
      source: 'public.keyless_events',
      timeColumn: 'happened_at',
      grain: 'hour',
      dimensions: [{ column: 'kind', type: 'text' }],
      measures: [{ name: 'events', type: 'bigint', sql: 'count(*)' }],
    };
    try {
      await expect(installRollups(db.pool, [keyless])).rejects.toThrow(
        'source table public.keyless_events has no primary key: change capture pairs the old and new rows of an ' +
          'UPDATE by it; add one (ALTER TABLE public.keyless_events ADD PRIMARY KEY (...)) and install again',
      );
      const { rows } = await db.pool.query(`SELECT to_regclass('analytics.keyless_hourly') AS t`);
      expect(rows).toEqual([{ t: null }]);
    } finally {
      await db.pool.query('DROP TABLE public.keyless_events');
    }
  });

  it('refuses a time column without time zone, or a dimension the source lacks, naming the field; writes nothing', async () => {
    await db.pool.query(
      'CREATE TABLE public.naive_events (id bigserial PRIMARY KEY, happened_at timestamp NOT NULL, kind text NOT NULL)',
    );
    const naive: RollupDefinition = {
      name: 'naive_daily',
      source: 'public.naive_events',
      timeColumn: 'happened_at',
      grain: 'day',
      dimensions: [{ column: 'kind', type: 'text' }],
      measures: [{ name: 'events', type: 'bigint', sql: 'count(*)' }],
    };
    try {
      await expect(installRollups(db.pool, [naive])).rejects.toThrow(
        'rollup "naive_daily": timeColumn must be of type timestamptz (timestamp with time zone), got ' +
          'public.naive_events.happened_at of type timestamp without time zone; convert it with ALTER TABLE ' +
          "public.naive_events ALTER COLUMN happened_at TYPE timestamptz USING happened_at AT TIME ZONE '<the zone its values are in>'",
      );
      await expect(installRollups(db.pool, [{ ...naive, timeColumn: 'occurred_at' }])).rejects.toThrow(
        'rollup "naive_daily": timeColumn must be a column of public.naive_events, got "occurred_at"',
      );
      // timestamptz with a precision, or under a domain, is timestamptz.
      await db.pool.query(
        `CREATE DOMAIN public.event_time AS timestamptz(3);
         ALTER TABLE public.naive_events ALTER COLUMN happened_at TYPE public.event_time`,
      );
      await expect(
        installRollups(db.pool, [{ ...naive, dimensions: [{ column: 'knd', type: 'text' }] }]),
      ).rejects.toThrow(
        'rollup "naive_daily": dimensions[].column must be a column of public.naive_events, got "knd"',
      );
      // Nothing was installed: no table, no state row, no trigger on the source.
      const { rows } = await db.pool.query(
        `SELECT to_regclass('analytics.naive_daily') AS t,
                (SELECT count(*)::int FROM aggjobs.rollup_state WHERE rollup = 'naive_daily') AS state,
                (SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'public.naive_events'::regclass) AS triggers`,
      );
      expect(rows).toEqual([{ t: null, state: 0, triggers: 0 }]);
      // And with the right columns it installs.
      await installRollups(db.pool, [naive]);
      await db.pool.query(
        `DROP TABLE analytics.naive_daily; DELETE FROM aggjobs.rollup_state WHERE rollup = 'naive_daily'`,
      );
    } finally {
      await db.pool.query('DROP TABLE public.naive_events; DROP DOMAIN IF EXISTS public.event_time');
    }
  });

  it('refuses a source whose name is a reserved word (its triggers spell it quoted), naming it; writes nothing', async () => {
    // Found by review: public.order's deletes and truncations were logged as public."order" and never
    // found by its refresh, which looks the source up as written.
    await db.pool.query(
      'CREATE TABLE public."order" (id bigserial PRIMARY KEY, placed_at timestamptz NOT NULL, kind text NOT NULL)',
    );
    const orders: RollupDefinition = {
      name: 'orders_daily',
      source: 'public.order',
      timeColumn: 'placed_at',
      grain: 'day',
      dimensions: [{ column: 'kind', type: 'text' }],
      measures: [{ name: 'orders', type: 'bigint', sql: 'count(*)' }],
    };
    try {
      await expect(installRollups(db.pool, [orders])).rejects.toThrow(
        'rollup "orders_daily": source must be a name SQL needs no quotes for (not a reserved word), got ' +
          'public.order, which SQL spells public."order": rename the table (ALTER TABLE public."order" RENAME TO …)',
      );
      const { rows } = await db.pool.query(
        `SELECT to_regclass('analytics.orders_daily') AS t,
                (SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'public."order"'::regclass) AS triggers`,
      );
      expect(rows).toEqual([{ t: null, triggers: 0 }]);
    } finally {
      await db.pool.query('DROP TABLE public."order"');
    }
  });

  it('rejects a bad definition naming the field and the rule', async () => {
    const bad = { ...hourly, name: 'Bad Name' };
    await expect(installRollups(db.pool, [bad])).rejects.toThrow(
      /name must be a lower-case SQL name, got "Bad Name"/,
    );
    const badGrain = { ...hourly, name: 'x', grain: { minutes: 7 } };
    await expect(installRollups(db.pool, [badGrain])).rejects.toThrow(/grain must be valid/);
  });
});

describe('materialized views', () => {
  it('refreshes when inputs changed, skips when they did not, and matches a direct query', async () => {
    await insertExecution('2026-02-01T10:30:00Z', 1, '2.5');
    await db.pool.query(
      `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at) VALUES (1, 1, 'login', '2026-02-01T09:00:00Z')`,
    );
    const first = await refreshMaterializedViews(db.pool, { timezone: 'UTC' });
    expect(first.map((r) => r.status)).toEqual(['refreshed', 'refreshed', 'refreshed']);
    const second = await refreshMaterializedViews(db.pool, { timezone: 'UTC' });
    expect(second.map((r) => r.status)).toEqual(['skipped', 'skipped', 'skipped']);
    await insertExecution('2026-02-01T11:30:00Z', 1, '1');
    const third = await refreshMaterializedViews(db.pool, { timezone: 'UTC' });
    expect(third.find((r) => r.view === 'mv_hourly_execution_stats')?.status).toBe('refreshed');
    const { rows } = await db.pool.query(
      `SELECT executions, credits_used::text, activity_events FROM analytics.mv_daily_user_metrics WHERE workspace_id = 1 AND user_id = 1`,
    );
    expect(rows).toEqual([{ executions: 2, credits_used: '3.5000', activity_events: 1 }]);
    // Two refreshes at once (two workers, or a manual run during the scheduled one): both succeed.
    const both = await Promise.all([
      refreshMaterializedViews(db.pool, { timezone: 'UTC', force: true }),
      refreshMaterializedViews(db.pool, { timezone: 'UTC', force: true }),
    ]);
    expect(both.flat().every((r) => r.status === 'refreshed')).toBe(true);
    await db.pool.query(`DELETE FROM public.user_activity_events`);
    const fourth = await refreshMaterializedViews(db.pool, { timezone: 'UTC' });
    expect(fourth.find((r) => r.view === 'mv_daily_user_metrics')).toMatchObject({
      status: 'refreshed',
      reason: 'inputs changed',
    });
  });

  it('waits at most lockTimeoutMs for another refresh of the same view', async () => {
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query(
        "SELECT pg_advisory_lock(hashtext('aggjobs.view'), hashtext('mv_daily_user_metrics'))",
      );
      await expect(
        refreshMaterializedViews(db.pool, { timezone: 'UTC', force: true, lockTimeoutMs: 200 }),
      ).rejects.toThrow(/lock timeout/);
    } finally {
      await holder.end();
    }
  });
});
