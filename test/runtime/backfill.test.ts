import { beforeAll, describe, expect, it } from 'vitest';
import { createControl, startWorker, TaskFailedError, type Runtime } from '../../src/runtime/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { assertRollupsMatchOracle } from '../support/oracle.ts';
import { backends, testRuntime, workerOptions, type Backend } from './runtime-harness.ts';

const databases: Record<Backend, TestDatabase> = {
  redis: await createTestDatabase(),
  postgres: await createTestDatabase(),
};

const DAY = 86_400_000;
const day = (offset: number): string => new Date(Date.now() + offset * DAY).toISOString().slice(0, 10);
/** Three whole days, ending yesterday: three hourly windows (one day each). */
const range = { start_date: day(-4), end_date: day(-1), granularity: 'hourly' as const };
const hourlyTables = ['execution_metrics_hourly', 'user_activity_hourly', 'credit_consumption_hourly'];

async function seed(db: TestDatabase): Promise<void> {
  await db.pool.query(
    `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
     SELECT 1 + i % 5, 1 + i % 17, 1, (ARRAY['success','failed'])[1 + i % 2],
            $1::date + make_interval(mins => (i * 7) % (3 * 24 * 60)), i % 900, 1
     FROM generate_series(1, 2000) i`,
    [range.start_date],
  );
}

async function childStates(db: TestDatabase, parentId: string): Promise<string[]> {
  const { rows } = await db.pool.query<{ state: string }>(
    'SELECT state FROM aggjobs.task_runs WHERE parent_id = $1 ORDER BY state',
    [parentId],
  );
  return rows.map((r) => r.state);
}

describe.each(backends)('backfill on %s', (backend) => {
  const db = databases[backend];
  let runtime: Runtime;

  beforeAll(async () => {
    await seed(db);
    runtime = await testRuntime(backend, db);
  });

  it('fans out one job per window, run by the workers in parallel, then sums up; rollups equal the oracle', async () => {
    const workers = await Promise.all(
      ['a', 'b'].map((n) =>
        startWorker(runtime, workerOptions({ name: `w-${backend}-${n}`, concurrency: 2 })),
      ),
    );
    try {
      const handle = await runtime.enqueue('backfill_aggregations', { kwargs: range });
      const result = (await handle.get({ timeout: 40 })) as Record<string, unknown>;
      expect(result).toMatchObject({ status: 'completed', total: 3, done: 3, failed: 0 });
      expect(await childStates(db, handle.id)).toEqual(['succeeded', 'succeeded', 'succeeded']);
      await assertRollupsMatchOracle(db.pool, 'UTC', { tables: hourlyTables });

      // A rerun after a crash redoes only the windows not done.
      await db.pool.query(
        `UPDATE aggjobs.backfill_windows SET state = 'running'
         WHERE window_start = (SELECT min(window_start) FROM aggjobs.backfill_windows)`,
      );
      const resumed = await runtime.enqueue('backfill_aggregations', { kwargs: range });
      await expect(resumed.get({ timeout: 40 })).resolves.toMatchObject({ status: 'completed', done: 3 });
      expect(await childStates(db, resumed.id)).toEqual(['succeeded']);

      // A rerun of a completed backfill recomputes it all.
      const again = await runtime.enqueue('backfill_aggregations', { kwargs: range });
      await expect(again.get({ timeout: 40 })).resolves.toMatchObject({ status: 'completed', done: 3 });
      expect(await childStates(db, again.id)).toHaveLength(3);
    } finally {
      await Promise.all(workers.map((w) => w.close()));
    }
  });

  it('can be cancelled: windows not done are skipped, and a rerun resumes them', async () => {
    const control = createControl(runtime);
    await control.pause('aggregation');
    const worker = await startWorker(runtime, workerOptions({ name: `w-${backend}-cancel` }));
    try {
      const handle = await runtime.enqueue('backfill_aggregations', {
        kwargs: { ...range, granularity: 'daily' },
      });
      const progress = await control.backfillProgress(handle.id);
      expect(progress).toMatchObject({ total: 1, pending: 1 });
      await expect(control.cancelBackfill(handle.id)).resolves.toMatchObject({ cancelled: 1 });
      await control.resume('aggregation');
      await expect(handle.get({ timeout: 30 })).resolves.toMatchObject({
        status: 'cancelled',
        cancelled: 1,
        done: 0,
      });
      expect(await childStates(db, handle.id)).toEqual(['revoked']);

      const resumed = await runtime.enqueue('backfill_aggregations', {
        kwargs: { ...range, granularity: 'daily' },
      });
      await expect(resumed.get({ timeout: 30 })).resolves.toMatchObject({ status: 'completed', done: 1 });
    } finally {
      await control.resume('aggregation');
      await worker.close();
    }
  });

  it('rejects a range beyond retention or too long at enqueue', async () => {
    const error = await runtime
      .enqueue('backfill_aggregations', { kwargs: { ...range, start_date: '2001-01-01' } })
      .catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/start_date must be within the retention period/);
    expect(error).not.toBeInstanceOf(TaskFailedError);
  });
});
