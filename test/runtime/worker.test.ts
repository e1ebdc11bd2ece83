import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createControl,
  startWorker,
  TaskFailedError,
  type Runtime,
  type WorkerHandle,
} from '../../src/runtime/index.ts';
import { InvalidTaskArgsError } from '../../src/tasks/index.ts';
import { tasksFor } from '../../src/index.ts';
import { createTestDatabase } from '../support/database.ts';
import { spawnCli } from '../reliability/cli-process.ts';
import { backends, eventually, testRedisUrl, testRuntime, workerOptions } from './runtime-harness.ts';

const db = await createTestDatabase({ poolMax: 12 });

async function failure(promise: Promise<unknown>): Promise<TaskFailedError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TaskFailedError);
  return error as TaskFailedError;
}

describe.each(backends)('worker on %s', (backend) => {
  let runtime: Runtime;
  let worker: WorkerHandle;

  beforeAll(async () => {
    runtime = await testRuntime(backend, db);
    worker = await startWorker(runtime, workerOptions({ name: `w-${backend}-main` }));
  });
  afterAll(async () => {
    await worker?.close();
  });

  it('runs a task and records the run', async () => {
    const tasks = tasksFor(runtime);
    const handle = await tasks.hourly_rollup.applyAsync();
    const result = await handle.get({ timeout: 30 });
    expect(result.grain).toBe('hour');
    expect(result.rollups.map((r) => r.rollup).sort()).toEqual([
      'credit_consumption_hourly',
      'execution_metrics_hourly',
      'user_activity_hourly',
    ]);
    const run = await handle.info();
    expect(run).toMatchObject({
      task: 'hourly_rollup',
      state: 'succeeded',
      attempts: 1,
      queue: 'aggregation',
    });
    expect(run?.worker).toBe(worker.name);
    expect(run?.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('rejects bad arguments at enqueue, naming the field and the rule, and writes nothing', async () => {
    const tasks = tasksFor(runtime);
    const before = await db.pool.query('SELECT count(*) AS n FROM aggjobs.task_runs');
    const cases: Array<[Promise<unknown>, RegExp]> = [
      [tasks.hourly_rollup.applyAsync({ args: ['2025-13-45T99:00:00'] }), /target_hour must be an ISO date/],
      [tasks.daily_rollup.applyAsync({ args: ['99999-01-01'] }), /target_date must be a date from year 2000/],
      [
        tasks.daily_rollup.applyAsync({ args: ['2001-01-01'] }),
        /target_date must be within the retention period/,
      ],
      [
        tasks.backfill_aggregations.applyAsync({
          kwargs: { start_date: '2026-01-09', end_date: '2026-01-01', granularity: 'hourly' },
        }),
        /end_date must be after start_date/,
      ],
      [
        tasks.backfill_aggregations.applyAsync({
          // @ts-expect-error -- a granularity the registry does not know is a compile error too
          kwargs: { start_date: '2026-01-01', end_date: '2026-01-09', granularity: 'hourlyish' },
        }),
        /granularity must be one of hourly, daily, weekly, monthly, got "hourlyish"/,
      ],
      [tasks.cleanup_old_data.applyAsync({ args: [Number.NaN] }), /retention_days must be a whole number/],
      // @ts-expect-error -- health_check takes no arguments
      [tasks.health_check.applyAsync({ args: ['now'] }), /args must have at most 0 value/],
    ];
    for (const [promise, message] of cases) {
      const error = await promise.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(InvalidTaskArgsError);
      expect((error as Error).message).toMatch(message);
    }
    const after = await db.pool.query('SELECT count(*) AS n FROM aggjobs.task_runs');
    expect(after.rows[0]).toEqual(before.rows[0]);
  });

  it('soft limit: the task is asked to stop, its statement is cancelled, the run is timed_out', async () => {
    const handle = await runtime.enqueue('test_polite_sleep', { kwargs: { seconds: 60 } });
    const error = await failure(handle.get({ timeout: 20 }));
    expect(error.run.state).toBe('timed_out');
    expect(error.run.error).toMatch(/soft time limit of 1 s/);
    expect(error.run.attempts).toBe(1);
  });

  it('hard limit, threads pool: a busy loop is killed with its thread and the worker goes on', async () => {
    // Only a thread can stop a task that never yields; the default async pool cannot.
    const looping = await testRuntime(backend, db);
    const w = await startWorker(
      looping,
      workerOptions({ name: `w-${backend}-threads`, pool: 'threads', queues: ['maintenance'] }),
    );
    try {
      const handle = await looping.enqueue('test_busy_loop', {});
      const error = await failure(handle.get({ timeout: 20 }));
      expect(error.run.state).toBe('timed_out');
      expect(error.run.error).toMatch(/hard time limit of 2 s/);
      const next = await looping.enqueue('health_check', {});
      await expect(next.get({ timeout: 30 })).resolves.toHaveProperty('status');
    } finally {
      await w.close();
    }
  });

  it('hard limit: a statement stuck in PostgreSQL is killed with its session', async () => {
    const handle = await runtime.enqueue('test_sql_sleep', {});
    const error = await failure(handle.get({ timeout: 20 }));
    expect(error.run.state).toBe('timed_out');
    const { rows } = await db.pool.query('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [
      `aggjobs run ${handle.id} #1`,
    ]);
    expect(rows).toEqual([]);
  });

  it('retries transient failures with backoff, in the same run', async () => {
    const handle = await runtime.enqueue('test_flaky', { kwargs: { succeed_on: 3 } });
    await expect(handle.get({ timeout: 20 })).resolves.toEqual({ attempt: 3 });
    expect((await handle.info())?.attempts).toBe(3);
  });

  it('does not retry a bug', async () => {
    const handle = await runtime.enqueue('test_broken', {});
    const error = await failure(handle.get({ timeout: 20 }));
    expect(error.run).toMatchObject({ state: 'failed', attempts: 1, error: 'undefined is not a function' });
  });

  it('revokes a queued run: it never runs', async () => {
    const control = createControl(runtime);
    await control.pause('aggregation');
    try {
      const handle = await runtime.enqueue('test_sleep', { kwargs: { ms: 1 } });
      await expect(control.revoke(handle.id)).resolves.toMatchObject({ action: 'revoked' });
      await control.resume('aggregation');
      const error = await failure(handle.get({ timeout: 5 }));
      expect(error.run.state).toBe('revoked');
      expect(error.run.startedAt).toBeNull();
    } finally {
      await control.resume('aggregation');
    }
  });

  it('terminates a running run from another process, and only that run', async () => {
    const victim = await runtime.enqueue('test_sleep', { kwargs: { ms: 30_000 } });
    const bystander = await runtime.enqueue('test_sleep', { kwargs: { ms: 1_500 } });
    await eventually(async () => (await victim.state()) === 'running');
    // `aggjobs control terminate` in a process of its own, on the same database and broker.
    const cli = spawnCli(['control', 'terminate', victim.id], {
      DATABASE_URL: db.url,
      ...(backend === 'redis' ? { REDIS_URL: testRedisUrl } : { REDIS_URL: '', CELERY_BROKER_URL: '' }),
      BROKER_KEY_PREFIX: runtime.broker.namespace,
      LOG_LEVEL: 'warn',
    });
    expect(await cli.exited, cli.output()).toBe(0);
    expect(cli.output()).toMatch(/"action": "terminating"/);
    const error = await failure(victim.get({ timeout: 10 }));
    expect(error.run.state).toBe('revoked');
    await expect(bystander.get({ timeout: 20 })).resolves.toHaveProperty('threadId');
  });

  it('retries a failed run on request, and reports queues and workers', async () => {
    const control = createControl(runtime);
    const failed = await runtime.enqueue('test_broken', {});
    await failure(failed.get({ timeout: 20 }));
    const again = await control.retry(failed.id);
    expect(again.id).not.toBe(failed.id);
    await failure(again.get({ timeout: 20 }));
    const counts = await control.queueCounts();
    expect(counts.map((c) => c.queue).sort()).toEqual(['aggregation', 'maintenance']);
    await control.setConcurrency(worker.name, 3);
    await eventually(async () => worker.stats().concurrency === 3);
    const listed = await eventually(async () =>
      (await control.workers()).find((w) => w.name === worker.name && w.concurrency === 3),
    );
    expect(listed).toMatchObject({ online: true, queues: ['aggregation', 'maintenance'] });
  });

  // One worker, two queues, two slots: a maintenance run holds one, a long aggregation run the other.
  // When the maintenance run ends, the aggregation Worker takes the freed slot at once (it used to
  // wait in BullMQ's loop for its long run to end: a backfill window's minutes).
  it('a slot freed on one queue goes at once to the next job of another queue whose run still runs', async () => {
    const shared = await testRuntime(backend, db);
    const w = await startWorker(shared, workerOptions({ name: `w-${backend}-slots`, concurrency: 2 }));
    await db.pool.query(
      'CREATE TABLE IF NOT EXISTS public.test_counters (key text PRIMARY KEY, n int NOT NULL)',
    );
    await db.pool.query(`INSERT INTO public.test_counters VALUES ('slots-${backend}', 0)`);
    const holder = await db.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM public.test_counters WHERE key = 'slots-${backend}' FOR UPDATE`);
      const blocked = await shared.enqueue('test_locked_increment', { kwargs: { key: `slots-${backend}` } });
      await eventually(async () => (await blocked.info())?.state === 'running' || undefined);
      const long = await shared.enqueue('test_sleep', { kwargs: { ms: 15_000 } });
      await eventually(async () => (await long.info())?.state === 'running' || undefined);
      const next = await shared.enqueue('test_sleep', { kwargs: { ms: 1 } });
      await new Promise((r) => setTimeout(r, 500));
      expect((await next.info())?.state).toBe('queued');

      await holder.query('COMMIT');
      await expect(blocked.get({ timeout: 20 })).resolves.toEqual({ n: 1 });
      await next.get({ timeout: 20 });
      // The next one ran in the freed slot while the long one still ran.
      expect((await long.info())?.state).toBe('running');
      await long.get({ timeout: 30 });
      const runs = await Promise.all([blocked.info(), long.info(), next.info()]);
      expect(runs.map((r) => [r?.state, r?.attempts])).toEqual([
        ['succeeded', 1],
        ['succeeded', 1],
        ['succeeded', 1],
      ]);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
      await w.close();
    }
  }, 90_000);

  it('replaces a task thread after max-tasks-per-child tasks', async () => {
    const recycler = await testRuntime(backend, db);
    const w = await startWorker(
      recycler,
      workerOptions({
        name: `w-${backend}-recycle`,
        concurrency: 1,
        pool: 'threads',
        maxTasksPerChild: 2,
        queues: ['aggregation'],
      }),
    );
    try {
      const threads = new Set<number>();
      for (let i = 0; i < 5; i += 1) {
        const handle = await recycler.enqueue('test_sleep', { kwargs: { ms: 1 } });
        threads.add(((await handle.get({ timeout: 20 })) as { threadId: number }).threadId);
      }
      expect(threads.size).toBe(3);
      expect(w.stats().recycled).toBe(2);
    } finally {
      await w.close();
    }
  });
});
