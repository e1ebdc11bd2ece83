import { describe, expect, it } from 'vitest';
import { startWorker } from '../../src/runtime/index.ts';
import { createTestDatabase } from '../support/database.ts';
import { assertRollupsMatchOracle } from '../support/oracle.ts';
import { testRuntime, workerOptions } from '../runtime/runtime-harness.ts';

/**
 * Source rows with NULL wherever the schema allows it (duration, completion, error type, session,
 * properties, a credit's user and execution), including groups made only of such rows: every rollup
 * of every grain still equals the oracle, through the tasks as a worker runs them.
 */
describe('source rows with NULLs', () => {
  it('rollups of every grain equal the oracle', async () => {
    const db = await createTestDatabase();
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, completed_at, duration_ms, credits_used, error_type)
       SELECT 1 + i % 3, i, 1, (ARRAY['running','failed'])[1 + i % 2], now() - make_interval(hours => i), NULL, NULL, 0, NULL
       FROM generate_series(1, 30) i
       UNION ALL
       SELECT 1, i, 2, 'success', now() - make_interval(hours => i), now(), CASE WHEN i % 2 = 0 THEN NULL ELSE i END, 1, NULL
       FROM generate_series(1, 30) i`,
    );
    await db.pool.query(
      `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id, properties)
       SELECT 1 + i % 2, i % 4, 'view', now() - make_interval(hours => i % 40), NULL, NULL FROM generate_series(1, 40) i`,
    );
    await db.pool.query(
      `INSERT INTO public.credit_transactions (workspace_id, user_id, execution_id, source, credits, created_at)
       SELECT 1 + i % 2, NULL, NULL, 'storage', i - 3, now() - make_interval(hours => i % 30) FROM generate_series(1, 30) i`,
    );
    const runtime = await testRuntime('redis', db);
    const worker = await startWorker(runtime, workerOptions({ name: 'w-nulls', queues: ['aggregation'] }));
    try {
      for (const task of ['hourly_rollup', 'daily_rollup', 'weekly_rollup', 'monthly_rollup'] as const) {
        await (await runtime.enqueue(task, {})).get({ timeout: 30 });
      }
      // Then rows change to and from NULL, and the incremental runs follow.
      await db.pool.query(`UPDATE public.execution_logs SET duration_ms = NULL WHERE id % 3 = 0`);
      await db.pool.query(`UPDATE public.credit_transactions SET user_id = 7 WHERE id % 4 = 0`);
      await db.pool.query(`UPDATE public.user_activity_events SET session_id = 'x' WHERE id % 5 = 0`);
      for (const task of ['hourly_rollup', 'daily_rollup', 'weekly_rollup', 'monthly_rollup'] as const) {
        await (await runtime.enqueue(task, {})).get({ timeout: 30 });
      }
      await assertRollupsMatchOracle(db.pool, 'UTC');
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM analytics.execution_metrics_hourly WHERE duration_ms_p50 IS NULL AND duration_ms_sum IS NULL`,
      );
      expect(rows[0]?.n).toBeGreaterThan(0);
    } finally {
      await worker.close();
    }
  });
});
