import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { startWorker } from '../../src/runtime/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { assertRollupsMatchOracle } from '../support/oracle.ts';
import { eventually, testRedisUrl, testRuntime, workerOptions } from '../runtime/runtime-harness.ts';
import { cliEntry } from '../support/cli-command.ts';

/**
 * kill -9 of a worker process in the middle of a backfill window and in the middle of a cleanup
 * (the hourly-rollup case is test/runtime/kill.test.ts, on both backends; these run on Redis).
 * The work is taken again by another worker, no run is left `running`, the rollups equal the oracle,
 * and cleanup deleted exactly the rows past retention.
 */
const DAY = 86_400_000;
const day = (offset: number): string => new Date(Date.now() + offset * DAY).toISOString().slice(0, 10);
const hourlyTables = ['execution_metrics_hourly', 'user_activity_hourly', 'credit_consumption_hourly'];

function spawnWorker(
  db: TestDatabase,
  namespace: string,
  queue: string,
  env: Record<string, string> = {},
): ChildProcess {
  return spawn(process.execPath, [cliEntry, 'worker', '-c', '2', '-Q', queue], {
    env: {
      ...process.env,
      DATABASE_URL: db.url,
      REDIS_URL: testRedisUrl,
      BROKER_KEY_PREFIX: namespace,
      WORKER_LOCK_SECONDS: '3',
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: 'ignore',
  });
}

async function kill9(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

async function unfinished(db: TestDatabase): Promise<unknown[]> {
  const { rows } = await db.pool.query(
    `SELECT id, task, state FROM aggjobs.task_runs WHERE state IN ('running', 'queued', 'retrying')`,
  );
  return rows;
}

describe('a worker killed with -9', () => {
  it('mid backfill window: the window is redone, the backfill completes, rollups equal the oracle', async () => {
    const db = await createTestDatabase();
    const range = { start_date: day(-4), end_date: day(-1), granularity: 'hourly' as const };
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       SELECT 1 + i % 5, 1 + i % 17, 1, (ARRAY['success','failed'])[1 + i % 2], $1::date + make_interval(mins => (i * 7) % (3 * 24 * 60)), i % 900, 1
       FROM generate_series(1, 3000) i`,
      [range.start_date],
    );
    await db.pool.query(
      `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id)
       SELECT 1 + i % 5, 1 + i % 17, 'view', $1::date + make_interval(mins => (i * 11) % (3 * 24 * 60)), 's' || (i % 50)
       FROM generate_series(1, 3000) i`,
      [range.start_date],
    );
    const namespace = `{kb${randomBytes(4).toString('hex')}}`;
    const runtime = await testRuntime('redis', db, { namespace });
    // Hold the second hourly rollup's table: a window commits nothing of it and waits mid-refresh.
    const blocker = await db.pool.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE analytics.user_activity_hourly IN ACCESS EXCLUSIVE MODE');
    let released = false;
    const child = spawnWorker(db, namespace, 'aggregation');
    try {
      const handle = await runtime.enqueue('backfill_aggregations', { kwargs: range });
      await eventually(async () => {
        const { rows } = await db.pool.query(
          `SELECT 1 FROM pg_stat_activity a JOIN aggjobs.task_runs r ON a.application_name LIKE 'aggjobs run ' || r.id || ' #%'
           WHERE r.task = 'backfill_window' AND a.wait_event_type = 'Lock'`,
        );
        return rows.length > 0;
      }, 40_000);
      await kill9(child);
      const worker = await startWorker(
        runtime,
        workerOptions({ name: 'w-after-backfill-kill', queues: ['aggregation'], stalledIntervalMs: 500 }),
      );
      try {
        await eventually(async () => {
          const { rows } = await db.pool.query(
            `SELECT 1 FROM aggjobs.task_runs WHERE task = 'backfill_window' AND attempts >= 2 AND worker = $1`,
            [worker.name],
          );
          return rows.length > 0;
        }, 30_000);
        await blocker.query('COMMIT');
        released = true;
        // The parent may have been on the killed worker too: it is taken again like any run.
        const result = await eventually(async () => {
          const info = await handle.info();
          return info?.state === 'succeeded' ? info : undefined;
        }, 40_000);
        expect(result.result).toMatchObject({ status: 'completed', total: 3, done: 3, failed: 0 });
        const { rows: windows } = await db.pool.query<{ state: string }>(
          'SELECT state FROM aggjobs.backfill_windows ORDER BY window_start',
        );
        expect(windows.map((w) => w.state)).toEqual(['done', 'done', 'done']);
        expect(await unfinished(db)).toEqual([]);
        await assertRollupsMatchOracle(db.pool, 'UTC', { tables: hourlyTables });
      } finally {
        await worker.close();
      }
    } finally {
      await kill9(child);
      if (!released) await blocker.query('ROLLBACK').catch(() => undefined);
      blocker.release();
    }
  });

  it('mid cleanup: the cleanup is redone, exactly the rows past retention are gone, rollups equal the oracle', async () => {
    const db = await createTestDatabase();
    // 20,000 rows past retention in batches of 50: a cleanup of a few seconds to kill in the middle.
    await db.pool.query(
      `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id)
       SELECT 1 + i % 5, 1 + i % 17, 'view', now() - interval '100 days' - make_interval(secs => i), 's' || (i % 50)
       FROM generate_series(1, 20000) i`,
    );
    await db.pool.query(
      `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id)
       SELECT 1 + i % 5, 1 + i % 17, 'click', now() - make_interval(mins => i % 5000), 's' || (i % 50)
       FROM generate_series(1, 3000) i`,
    );
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       SELECT 1 + i % 5, 1 + i % 17, 1, 'success', now() - interval '89 days' - make_interval(mins => i % 600), i, 1
       FROM generate_series(1, 2000) i`,
    );
    const env = { CLEANUP_BATCH_SIZE: '50' };
    const namespace = `{kc${randomBytes(4).toString('hex')}}`;
    const runtime = await testRuntime('redis', db, { namespace, env });
    // Fold everything into the rollups first: the buckets past retention must stay as they are.
    const folder = await startWorker(runtime, workerOptions({ name: 'w-fold', queues: ['aggregation'] }));
    for (const task of ['hourly_rollup', 'daily_rollup'] as const) {
      await (await runtime.enqueue(task, {})).get({ timeout: 30 });
    }
    await folder.close();
    const rollupsBefore = await db.pool.query<{ n: number; s: number }>(
      `SELECT count(*)::int AS n, sum(events_total)::int AS s FROM analytics.user_activity_daily`,
    );
    const count = async (where: string): Promise<number> => {
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM public.user_activity_events WHERE ${where}`,
      );
      return rows[0]?.n ?? -1;
    };

    const child = spawnWorker(db, namespace, 'maintenance', env);
    try {
      const handle = await runtime.enqueue('cleanup_old_data', {});
      const atKill = await eventually(async () => {
        const n = await count(`occurred_at < now() - interval '95 days'`);
        return n < 19_000 ? n : undefined;
      }, 40_000);
      await kill9(child);
      const remaining = await count(`occurred_at < now() - interval '95 days'`);
      expect(atKill).toBeGreaterThan(0);
      expect(remaining).toBeGreaterThan(0);
      const worker = await startWorker(
        runtime,
        workerOptions({ name: 'w-after-cleanup-kill', queues: ['maintenance'], stalledIntervalMs: 500 }),
      );
      try {
        const result = (await handle.get({ timeout: 40 })) as { deleted: Record<string, number> };
        const info = await handle.info();
        expect(info?.attempts).toBe(2);
        expect(info?.worker).toBe(worker.name);
        // The second attempt deleted what the first left; nothing newer than the cutoff went.
        expect(result.deleted['public.user_activity_events']).toBe(remaining);
        expect(result.deleted['public.execution_logs']).toBe(0);
        expect(await count(`occurred_at < now() - interval '90 days'`)).toBe(0);
        expect(await count(`occurred_at >= now() - interval '90 days'`)).toBe(3000);
        const { rows: logs } = await db.pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM public.execution_logs',
        );
        expect(logs[0]?.n).toBe(2000);
        // Rollups past the cutoff are frozen: the daily rollup still counts the deleted rows.
        const rollupsAfter = await db.pool.query<{ n: number; s: number }>(
          `SELECT count(*)::int AS n, sum(events_total)::int AS s FROM analytics.user_activity_daily`,
        );
        expect(rollupsAfter.rows[0]).toEqual(rollupsBefore.rows[0]);
        expect(await unfinished(db)).toEqual([]);
        const { rows: wm } = await db.pool.query<{ cutoff: Date }>(
          'SELECT max(cutoff) AS cutoff FROM aggjobs.retention_watermarks',
        );
        await assertRollupsMatchOracle(db.pool, 'UTC', {
          frozenBefore: wm[0]?.cutoff ?? undefined,
          tables: [
            ...hourlyTables,
            'execution_metrics_daily',
            'user_activity_daily',
            'credit_consumption_daily',
          ],
        });
      } finally {
        await worker.close();
      }
    } finally {
      await kill9(child);
    }
  });
});
