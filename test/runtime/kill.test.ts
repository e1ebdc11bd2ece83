import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { startWorker } from '../../src/runtime/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { assertRollupsMatchOracle } from '../support/oracle.ts';
import {
  backends,
  eventually,
  testRedisUrl,
  testRuntime,
  workerOptions,
  type Backend,
} from './runtime-harness.ts';
import { cliEntry } from '../support/cli-command.ts';

const databases: Record<Backend, TestDatabase> = {
  redis: await createTestDatabase(),
  postgres: await createTestDatabase(),
};

const hourlyTables = ['execution_metrics_hourly', 'user_activity_hourly', 'credit_consumption_hourly'];

async function writeSourceRows(db: TestDatabase, n: number, seed: number): Promise<void> {
  await db.pool.query(
    `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, completed_at, duration_ms, credits_used)
     SELECT 1 + (i * 7 + $2) % 13, 1 + (i * 11) % 57, 1 + i % 5,
            (ARRAY['success','failed','timeout','running','cancelled'])[1 + (i + $2) % 5],
            now() - make_interval(mins => (i * 37 + $2) % (3 * 24 * 60)), now(), (i * 13) % 5000, ((i % 9) * 0.25)::numeric
     FROM generate_series(1, $1) i`,
    [n, seed],
  );
  await db.pool.query(
    `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id)
     SELECT 1 + i % 13, 1 + i % 57, (ARRAY['login','view','click'])[1 + i % 3],
            now() - make_interval(mins => (i * 41 + $2) % (3 * 24 * 60)), 's' || (i % 97)
     FROM generate_series(1, $1) i`,
    [n, seed],
  );
  await db.pool.query(
    `INSERT INTO public.credit_transactions (workspace_id, user_id, source, credits, created_at)
     SELECT 1 + i % 13, 1 + i % 57, (ARRAY['execution','refund'])[1 + i % 2], (i % 7) - 1,
            now() - make_interval(mins => (i * 43 + $2) % (3 * 24 * 60))
     FROM generate_series(1, $1) i`,
    [n, seed],
  );
}

describe.each(backends)('a worker killed with -9 mid-rollup, on %s', (backend) => {
  const db = databases[backend];

  it('the run is taken again and the rollups end as a plain GROUP BY', async () => {
    await writeSourceRows(db, 3000, 1);
    const namespace = backend === 'redis' ? `{k${randomBytes(4).toString('hex')}}` : 'bullmq';
    const runtime = await testRuntime(backend, db, { namespace });

    // Hold the second rollup's table: the run commits the first rollup, then waits inside the
    // transaction of the second — mid-rollup — until this lock goes.
    const blocker = await db.pool.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE analytics.user_activity_hourly IN ACCESS EXCLUSIVE MODE');

    const child = spawn(process.execPath, [cliEntry, 'worker', '-c', '1', '-Q', 'aggregation'], {
      env: {
        ...process.env,
        DATABASE_URL: db.url,
        ...(backend === 'redis' ? { REDIS_URL: testRedisUrl } : { REDIS_URL: '', CELERY_BROKER_URL: '' }),
        BROKER_KEY_PREFIX: namespace,
        WORKER_LOCK_SECONDS: '3',
        LOG_LEVEL: 'warn',
      },
      stdio: 'ignore',
    });
    let released = false;
    try {
      const handle = await runtime.enqueue('hourly_rollup', {});
      const session = `aggjobs run ${handle.id} #1`;
      await eventually(async () => {
        const { rows } = await db.pool.query(
          `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
          [session],
        );
        return rows.length > 0;
      }, 40_000);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));

      // Late and changed data while no worker runs.
      await writeSourceRows(db, 500, 2);
      await db.pool.query(`UPDATE public.execution_logs SET status = 'success' WHERE id % 10 = 0`);
      await db.pool.query(`DELETE FROM public.user_activity_events WHERE id % 17 = 0`);

      const worker = await startWorker(
        runtime,
        workerOptions({ name: `w-${backend}-after-kill`, queues: ['aggregation'], stalledIntervalMs: 500 }),
      );
      try {
        // Taken again: a second attempt, on the new worker (the dead one's session was terminated).
        await eventually(async () => {
          const run = await handle.info();
          return run?.attempts === 2 && run.worker === worker.name;
        }, 30_000);
        await blocker.query('COMMIT');
        released = true;
        const result = await handle.get({ timeout: 30 });
        expect(result).toMatchObject({ grain: 'hour', mode: 'incremental' });
        await assertRollupsMatchOracle(db.pool, 'UTC', { tables: hourlyTables });
        const { rows } = await db.pool.query<{ n: number }>(
          'SELECT count(*) AS n FROM analytics.user_activity_hourly',
        );
        expect(rows[0]?.n).toBeGreaterThan(0);
      } finally {
        await worker.close();
      }
    } finally {
      child.kill('SIGKILL');
      if (!released) await blocker.query('ROLLBACK').catch(() => undefined);
      blocker.release();
    }
  });
});
