import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { builtinRollups, cleanupOldData, defaultSources, refreshRollup } from '../../src/rollups/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { compareWithOracle } from '../support/oracle.ts';
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

    expect(result.deleted['"public"."execution_logs"']).toBe(expected[0]?.logs);
    expect(result.deleted['"public"."user_activity_events"']).toBe(expected[0]?.events);
    expect(result.deleted['analytics."execution_metrics_hourly"']).toBe(expected[0]?.hourly);
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
      'SELECT cutoff FROM aggjobs.retention_watermarks LIMIT 1',
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
