import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  builtinRollups,
  cleanupOldData,
  defaultSources,
  refreshRollup,
  type RollupDefinition,
} from '../../src/rollups/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { compareWithOracle, frozenAfterCleanup } from '../support/oracle.ts';
import { refreshAll, resetData } from '../support/rollup-helpers.ts';

const ZONE = 'UTC';
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
beforeEach(async () => {
  await resetData(db.pool);
});

/** Executions and events every 6 hours over the last 40 days, for 3 workspaces. */
async function seedHistory(): Promise<void> {
  await db.pool.query(`
    INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
    SELECT ws, ws * 10 + (h % 3), h % 4, CASE WHEN h % 5 = 0 THEN 'failed' ELSE 'success' END,
           date_trunc('hour', now()) - make_interval(hours => h * 6), 100 + h, 1.5
    FROM generate_series(1, 160) h, generate_series(1, 3) ws;
    INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id)
    SELECT ws, ws * 10, 'login', date_trunc('hour', now()) - make_interval(hours => h * 6), 's' || h
    FROM generate_series(1, 160) h, generate_series(1, 3) ws;`);
}

/** Credit transactions every 6 hours over the last 40 days, for 3 workspaces and 2 sources. */
async function seedCredits(): Promise<void> {
  await db.pool.query(`
    INSERT INTO public.credit_transactions (workspace_id, user_id, source, credits, created_at)
    SELECT ws, ws * 10 + (h % 2), src, 0.25 * h, date_trunc('hour', now()) - make_interval(hours => h * 6)
    FROM generate_series(1, 160) h, generate_series(1, 3) ws, unnest(ARRAY['execution', 'api']) src;`);
}

/** Rows of a rollup whose bucket starts before `cutoff`. */
async function rowsBefore(table: string, cutoff: Date): Promise<unknown[]> {
  const { rows } = await db.pool.query(
    `SELECT * FROM analytics.${table} WHERE bucket_start < $1 ORDER BY 1, 2, 3`,
    [cutoff],
  );
  return rows;
}

/** Polls until `done` holds (at most 20 s). */
async function waitUntil(done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error('condition not reached within 20 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Sessions of this database waiting for a lock of this kind ('transactionid', 'advisory'). */
async function waitingOn(lock: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = $1`,
    [lock],
  );
  return rows[0]?.n ?? 0;
}

async function snapshot(table: string): Promise<unknown[]> {
  const { rows } = await db.pool.query(`SELECT * FROM analytics.${table} ORDER BY 1, 2, 3`);
  return rows.map((r: Record<string, unknown>) => ({ ...r, updated_at: undefined }));
}

const policy = { retentionDays: 10, sources: defaultSources, rollupRetentionFactor: 2, batchSize: 50 };

describe('retention (cleanup_old_data)', () => {
  it('deletes old source rows in batches and old hourly rollups, and changes no kept rollup row', async () => {
    await seedHistory();
    await refreshAll(db.pool, ZONE);
    const dailyBefore = await snapshot('execution_metrics_daily');
    const activityBefore = await snapshot('user_activity_daily');
    const { rows: expected } = await db.pool.query<{ logs: number; events: number; hourly: number }>(`
      SELECT (SELECT count(*) FROM public.execution_logs WHERE started_at < now() - interval '10 days') AS logs,
             (SELECT count(*) FROM public.user_activity_events WHERE occurred_at < now() - interval '10 days') AS events,
             (SELECT count(*) FROM analytics.execution_metrics_hourly WHERE bucket_start < now() - interval '20 days') AS hourly`);

    const result = await cleanupOldData(db.pool, builtinRollups, policy);

    expect(result.deleted['public.execution_logs']).toBe(expected[0]?.logs);
    expect(result.deleted['public.user_activity_events']).toBe(expected[0]?.events);
    expect(result.deleted['analytics.execution_metrics_hourly']).toBe(expected[0]?.hourly);
    expect(result.batches).toBeGreaterThan(3); // 50-row batches
    const { rows: left } = await db.pool.query<{ n: number }>(
      `SELECT count(*) AS n FROM public.execution_logs WHERE started_at < now() - interval '10 days'`,
    );
    expect(left[0]?.n).toBe(0);
    const { rows: log } = await db.pool.query<{ n: number }>('SELECT count(*) AS n FROM aggjobs.change_log');
    expect(log[0]?.n).toBe(0); // retention deletes do not look like deletes

    // A refresh after cleanup leaves the frozen daily buckets as they were.
    await refreshAll(db.pool, ZONE);
    expect(await snapshot('execution_metrics_daily')).toEqual(dailyBefore);
    expect(await snapshot('user_activity_daily')).toEqual(activityBefore);
    // Even a window refresh over all history does not recompute frozen buckets from missing rows.
    for (const def of builtinRollups) {
      await refreshRollup(db.pool, def, {
        timezone: ZONE,
        mode: { kind: 'window', start: new Date(0), end: new Date() },
      });
    }
    expect(await snapshot('execution_metrics_daily')).toEqual(dailyBefore);
  });

  it('keeps frozen buckets frozen against late rows, and unfrozen buckets exact', async () => {
    await seedHistory();
    await refreshAll(db.pool, ZONE);
    await cleanupOldData(db.pool, builtinRollups, policy);
    const frozenBefore = await snapshot('execution_metrics_daily');
    const { rows } = await db.pool.query<{ cutoff: Date }>(
      `SELECT cutoff FROM aggjobs.retention_watermarks WHERE source_table = 'public.execution_logs'`,
    );
    const cutoff = rows[0]?.cutoff;
    expect(cutoff).toBeInstanceOf(Date);
    // A late row for a frozen day, an update in the live period, a delete in the live period.
    await db.pool.query(`
      INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at)
      VALUES (1, 1, 1, 'success', now() - interval '30 days'), (2, 1, 1, 'running', now() - interval '2 days');
      UPDATE public.execution_logs SET status = 'timeout' WHERE id IN (SELECT id FROM public.execution_logs WHERE workspace_id = 3 ORDER BY id DESC LIMIT 2);
      DELETE FROM public.execution_logs WHERE id IN (SELECT id FROM public.execution_logs WHERE workspace_id = 1 ORDER BY id DESC LIMIT 3);`);
    await refreshAll(db.pool, ZONE);
    const after = await snapshot('execution_metrics_daily');
    const isFrozen = (r: unknown): boolean => (r as { bucket_start: Date }).bucket_start < (cutoff as Date);
    expect(after.filter(isFrozen)).toEqual(frozenBefore.filter(isFrozen));
    // Buckets that start at or after the cutoff hold all their rows: every rollup equals the oracle there.
    expect(await compareWithOracle(db.pool, ZONE, { frozenBefore: cutoff })).toEqual([]);
  });
});

/**
 * Credit transactions are a ledger: cleanup never deletes them, and they have no retention watermark.
 * Their hourly rollup expires like every hourly rollup (after 2 × retention) and carries its own
 * watermark, so the expired buckets are frozen: nothing brings one of them back.
 */
describe('retention of an hourly rollup whose source is kept (credit_consumption_hourly)', () => {
  const creditPolicy = { ...policy, retentionDays: 7 }; // hourly rollups expire after 14 days
  const creditHourly = builtinRollups.find((d) => d.name === 'credit_consumption_hourly') as RollupDefinition;

  it('keeps expired hourly buckets frozen against a late credit row and a backfill; the daily rollup stays exact', async () => {
    await seedHistory();
    await seedCredits();
    await refreshAll(db.pool, ZONE);
    const hourlyBefore = await rowsBefore('credit_consumption_hourly', new Date());

    const result = await cleanupOldData(db.pool, builtinRollups, creditPolicy);
    const rollupCutoff = new Date(result.rollupCutoff);
    const frozen = frozenAfterCleanup(result);
    const expired = hourlyBefore.filter((r) => (r as { bucket_start: Date }).bucket_start < rollupCutoff);
    expect(expired.length).toBeGreaterThan(0);
    expect(result.deleted['analytics.credit_consumption_hourly']).toBe(expired.length);
    expect(await rowsBefore('credit_consumption_hourly', rollupCutoff)).toEqual([]);

    // Late credit rows 15 days old: one in a group that expired, one in a group that never existed
    // (a new source); and one in the live period.
    await db.pool.query(`
      INSERT INTO public.credit_transactions (workspace_id, user_id, source, credits, created_at)
      VALUES (1, 10, 'execution', 3, date_trunc('hour', now()) - interval '15 days' - interval '6 hours'),
             (2, 20, 'refund', -4, date_trunc('hour', now()) - interval '15 days' + interval '10 minutes'),
             (3, 30, 'refund', -1, now() - interval '2 days');`);
    await refreshAll(db.pool, ZONE);
    expect(await rowsBefore('credit_consumption_hourly', rollupCutoff)).toEqual([]); // no lone group
    expect(await compareWithOracle(db.pool, ZONE, { frozenBefore: frozen })).toEqual([]);

    // A backfill over the old range: a window refresh of every rollup over all of history (what each
    // backfill window runs) recomputes no expired bucket either.
    for (const def of builtinRollups) {
      await refreshRollup(db.pool, def, {
        timezone: ZONE,
        mode: { kind: 'window', start: new Date(Date.now() - 40 * 86_400_000), end: new Date() },
      });
    }
    expect(await rowsBefore('credit_consumption_hourly', rollupCutoff)).toEqual([]);
    expect(await compareWithOracle(db.pool, ZONE, { frozenBefore: frozen })).toEqual([]);
    // The daily credit rollup has no frozen bucket: exact over all of history, late rows included.
    expect(frozen['credit_consumption_daily']).toBeUndefined();
    expect(await compareWithOracle(db.pool, ZONE, { tables: ['credit_consumption_daily'] })).toEqual([]);

    // The ledger is kept (every row, late ones included); the hourly rollup's own watermark records
    // how far its rows were deleted.
    const { rows: ledger } = await db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM public.credit_transactions',
    );
    expect(ledger[0]?.n).toBe(160 * 3 * 2 + 3);
    const { rows: marks } = await db.pool.query<{ source_table: string; cutoff: Date }>(
      'SELECT source_table, cutoff FROM aggjobs.retention_watermarks ORDER BY source_table',
    );
    const sourceCutoff = new Date(result.sourceCutoff);
    expect(marks).toEqual([
      { source_table: 'analytics.credit_consumption_hourly', cutoff: rollupCutoff },
      { source_table: 'analytics.execution_metrics_hourly', cutoff: rollupCutoff },
      { source_table: 'analytics.user_activity_hourly', cutoff: rollupCutoff },
      { source_table: 'public.execution_logs', cutoff: sourceCutoff },
      { source_table: 'public.user_activity_events', cutoff: sourceCutoff },
    ]);

    // A later cleanup with a longer retention does not unfreeze what was deleted.
    await cleanupOldData(db.pool, builtinRollups, { ...creditPolicy, retentionDays: 30 });
    const { rows: after } = await db.pool.query<{ cutoff: Date }>(
      `SELECT cutoff FROM aggjobs.retention_watermarks WHERE source_table = 'analytics.credit_consumption_hourly'`,
    );
    expect(after[0]?.cutoff).toEqual(rollupCutoff);
  });

  it('waits for a refresh that read the old watermark, so that it cannot write an expired group back', async () => {
    await seedCredits();
    await refreshAll(db.pool, ZONE);
    // A late row 15 days old in a new group; its refresh is held at that group's key by an
    // uncommitted row of the same key, after it read the (absent) watermark.
    await db.pool.query(`
      INSERT INTO public.credit_transactions (workspace_id, user_id, source, credits, created_at)
      VALUES (2, 20, 'refund', -4, date_trunc('hour', now()) - interval '15 days');`);
    const blocker = await db.pool.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`
        INSERT INTO analytics.credit_consumption_hourly (bucket_start, workspace_id, source)
        VALUES (date_trunc('hour', now()) - interval '15 days', 2, 'refund')`);
      const refresh = refreshRollup(db.pool, creditHourly, { timezone: ZONE, mode: { kind: 'incremental' } });
      await waitUntil(async () => (await waitingOn('transactionid')) === 1);

      let cleanupDone = false;
      const cleanup = cleanupOldData(db.pool, [creditHourly], creditPolicy).finally(() => {
        cleanupDone = true;
      });
      // The cleanup moves the watermark, then waits for the refresh in progress before deleting.
      await waitUntil(async () => cleanupDone || (await waitingOn('advisory')) === 1);
      await blocker.query('ROLLBACK');
      expect((await refresh).groupsRecomputed).toBe(1);
      const result = await cleanup;
      expect(await rowsBefore('credit_consumption_hourly', new Date(result.rollupCutoff))).toEqual([]);
    } finally {
      blocker.release();
    }
  });
});
