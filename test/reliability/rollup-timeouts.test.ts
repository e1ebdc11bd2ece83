import { describe, expect, it } from 'vitest';
import { startWorker } from '../../src/runtime/index.ts';
import { createTestDatabase } from '../support/database.ts';
import { testRuntime, workerOptions } from '../runtime/runtime-harness.ts';

/**
 * Statement and lock timeouts on every rollup transaction. The seam is the database's own: a
 * statement trigger (test database only) on each rollup table and on the cleaned source tables
 * records `current_setting('statement_timeout')` and `lock_timeout` of the session that writes them,
 * from inside the refresh's (or cleanup batch's) transaction.
 */
const rollupTables = [
  'execution_metrics_hourly',
  'user_activity_hourly',
  'credit_consumption_hourly',
  'execution_metrics_daily',
  'user_activity_daily',
  'credit_consumption_daily',
];

describe('statement and lock timeouts', () => {
  it('every rollup write runs under ROLLUP_STATEMENT_TIMEOUT_MS and ROLLUP_LOCK_TIMEOUT_MS; cleanup under 1 s lock and 30 s statement timeouts', async () => {
    const db = await createTestDatabase();
    await db.pool.query(`
      CREATE TABLE public.seen_settings (tbl text, op text, statement_timeout text, lock_timeout text, app text);
      CREATE FUNCTION public.record_settings() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO public.seen_settings
        VALUES (TG_TABLE_NAME, TG_OP, current_setting('statement_timeout'), current_setting('lock_timeout'),
                current_setting('application_name'));
        RETURN NULL;
      END $$;`);
    for (const t of rollupTables) {
      await db.pool.query(
        `CREATE TRIGGER record_settings AFTER INSERT OR UPDATE OR DELETE ON analytics.${t}
         FOR EACH STATEMENT EXECUTE FUNCTION public.record_settings()`,
      );
    }
    for (const t of ['execution_logs', 'user_activity_events']) {
      await db.pool.query(
        `CREATE TRIGGER record_settings AFTER DELETE ON public.${t} FOR EACH STATEMENT EXECUTE FUNCTION public.record_settings()`,
      );
    }
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       SELECT 1 + i % 3, i, 1, 'success', now() - make_interval(hours => i % 200), i, 1 FROM generate_series(1, 500) i
       UNION ALL
       SELECT 1, i, 1, 'success', now() - interval '120 days', i, 1 FROM generate_series(1, 20) i`,
    );
    await db.pool.query(
      `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at)
       SELECT 1 + i % 3, i, 'view', now() - make_interval(hours => i % 200) FROM generate_series(1, 500) i`,
    );
    const runtime = await testRuntime('redis', db, {
      env: { ROLLUP_STATEMENT_TIMEOUT_MS: '123456', ROLLUP_LOCK_TIMEOUT_MS: '7890' },
    });
    const worker = await startWorker(runtime, workerOptions({ name: 'w-timeouts' }));
    try {
      const day = new Date(Date.now() - 3 * 86_400_000).toISOString().slice(0, 10);
      const end = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
      for (const [task, kwargs] of [
        ['hourly_rollup', {}],
        ['daily_rollup', {}],
        ['backfill_aggregations', { start_date: day, end_date: end, granularity: 'hourly' }],
        ['backfill_aggregations', { start_date: day, end_date: end, granularity: 'daily' }],
        ['cleanup_old_data', {}],
      ] as const) {
        await (await runtime.enqueue(task, { kwargs })).get({ timeout: 30 });
      }
      const { rows } = await db.pool.query<{
        task: string;
        tbl: string;
        statement_timeout: string;
        lock_timeout: string;
        n: number;
      }>(
        `SELECT r.task, s.tbl, s.statement_timeout, s.lock_timeout, count(*)::int AS n
         FROM public.seen_settings s JOIN aggjobs.task_runs r ON s.app LIKE 'aggjobs run ' || r.id || ' #%'
         GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`,
      );
      const unattributed = await db.pool.query(
        `SELECT * FROM public.seen_settings s WHERE NOT EXISTS (SELECT 1 FROM aggjobs.task_runs r WHERE s.app LIKE 'aggjobs run ' || r.id || ' #%')`,
      );
      expect(unattributed.rows).toEqual([]);
      const refreshes = rows.filter((r) => r.task !== 'cleanup_old_data');
      expect(new Set(refreshes.map((r) => r.task))).toEqual(
        new Set(['hourly_rollup', 'daily_rollup', 'backfill_window']),
      );
      expect(new Set(refreshes.map((r) => r.tbl))).toEqual(new Set(rollupTables));
      for (const r of refreshes) {
        expect(r, `${r.task} ${r.tbl}`).toMatchObject({
          statement_timeout: '123456ms',
          lock_timeout: '7890ms',
        });
      }
      // Cleanup: each batch is a short transaction with a 1 s lock timeout and a 30 s statement
      // timeout (a batch of CLEANUP_BATCH_SIZE rows takes well under a second).
      const cleanup = rows.filter((r) => r.task === 'cleanup_old_data');
      expect(cleanup.map((r) => r.tbl)).toContain('execution_logs');
      for (const r of cleanup) {
        expect(r.lock_timeout, r.tbl).toBe('1s');
        expect(r.statement_timeout, r.tbl).toBe('30s');
      }
      console.log(JSON.stringify({ seenSettings: rows }));
    } finally {
      await worker.close();
    }
  });

  it('a rollup that cannot get its lock fails after ROLLUP_LOCK_TIMEOUT_MS instead of waiting', async () => {
    const db = await createTestDatabase();
    await db.pool.query(
      `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at)
       SELECT 1, i, 'view', now() - make_interval(mins => i) FROM generate_series(1, 100) i`,
    );
    const runtime = await testRuntime('redis', db, {
      env: { ROLLUP_LOCK_TIMEOUT_MS: '300', TASK_MAX_RETRIES: '0' },
    });
    const blocker = await db.pool.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE analytics.user_activity_hourly IN ACCESS EXCLUSIVE MODE');
    const worker = await startWorker(
      runtime,
      workerOptions({ name: 'w-lock-timeout', queues: ['aggregation'] }),
    );
    try {
      const started = Date.now();
      const handle = await runtime.enqueue('hourly_rollup', {});
      await expect(handle.get({ timeout: 20 })).rejects.toThrow(/lock timeout/i);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect((await handle.info())?.state).toBe('failed');
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
      await worker.close();
    }
  });
});
