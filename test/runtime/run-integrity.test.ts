/**
 * One truth for every run (aggjobs.task_runs), forced on both brokers: a run whose worker dies on
 * every attempt ends failed with a reason, a stalled worker that resumes writes nothing, a job the
 * broker lost is sent again with its delay, orphans are settled by the reaper, and a worker on two
 * queues never holds more jobs than its concurrency, nor starts any after its shutdown began.
 * Every test asserts the final state of every run it touched and that nothing ran twice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createControl, startWorker } from '../../src/runtime/index.ts';
import { reapRuns } from '../../src/runtime/run-reaper.ts';
import { requestTermination } from '../../src/runtime/run-ownership.ts';
import { createLogger } from '../../src/log/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { assertRollupsMatchOracle } from '../support/oracle.ts';
import { TALLY_TABLE_SQL } from './fixtures/tally-tasks.ts';
import {
  backends,
  eventually,
  testRedisUrl,
  testRuntime,
  workerOptions,
  type Backend,
} from './runtime-harness.ts';
import { cliEntry } from '../support/cli-command.ts';

const tallyTasks = [new URL('./fixtures/tally-tasks.ts', import.meta.url).href];
const hourlyTables = ['execution_metrics_hourly', 'user_activity_hourly', 'credit_consumption_hourly'];

async function writeSourceRows(db: TestDatabase): Promise<void> {
  await db.pool.query(
    `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, completed_at, duration_ms, credits_used)
     SELECT 1 + i % 7, 1 + i % 31, 1 + i % 5, (ARRAY['success','failed','timeout'])[1 + i % 3],
            now() - make_interval(mins => i * 7 % 2880), now(), i * 13 % 5000, (i % 9) * 0.25
     FROM generate_series(1, 800) i`,
  );
  await db.pool.query(
    `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id)
     SELECT 1 + i % 7, 1 + i % 31, (ARRAY['login','view'])[1 + i % 2], now() - make_interval(mins => i * 11 % 2880), 's' || i % 41
     FROM generate_series(1, 800) i`,
  );
}

/** A worker process (the CLI), on this backend and namespace, with a short lock so stalls show fast. */
function spawnWorker(
  backend: Backend,
  db: TestDatabase,
  namespace: string,
  name: string,
  env: Record<string, string> = {},
): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [cliEntry, 'worker', '-c', '1', '-Q', 'aggregation', '-n', name], {
    env: {
      ...process.env,
      DATABASE_URL: db.url,
      ...(backend === 'redis' ? { REDIS_URL: testRedisUrl } : { REDIS_URL: '', CELERY_BROKER_URL: '' }),
      BROKER_KEY_PREFIX: namespace,
      WORKER_LOCK_SECONDS: '2',
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/** The run's attempt `attempt` is in its rollup, waiting on the lock the test holds. */
async function waitingOnLock(db: TestDatabase, runId: string, attempt: number): Promise<boolean> {
  const { rows } = await db.pool.query(
    `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
    [`aggjobs run ${runId} #${attempt}`],
  );
  return rows.length > 0;
}

async function runSessions(db: TestDatabase, runId: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE $1`,
    [`aggjobs run ${runId} #%`],
  );
  return rows[0]?.n ?? 0;
}

function namespaceFor(backend: Backend): string {
  return backend === 'redis' ? `{i${randomBytes(4).toString('hex')}}` : 'bullmq';
}

describe.each(backends)('run integrity on %s', (backend) => {
  it('a run whose worker is killed on every attempt ends failed with the reason, never run past its attempts', async () => {
    const db = await createTestDatabase();
    await writeSourceRows(db);
    const namespace = namespaceFor(backend);
    const env = { TASK_MAX_RETRIES: '2' };
    const runtime = await testRuntime(backend, db, { namespace, env });
    const blocker = await db.pool.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE analytics.user_activity_hourly IN ACCESS EXCLUSIVE MODE');
    const children: ChildProcess[] = [];
    try {
      const handle = await runtime.enqueue('hourly_rollup', {});
      for (let attempt = 1; attempt <= 3; attempt += 1) {
        const { child } = spawnWorker(backend, db, namespace, `doomed-${attempt}`, env);
        children.push(child);
        await eventually(async () => {
          const run = await handle.info();
          return (
            run?.attempts === attempt &&
            run.worker === `doomed-${attempt}` &&
            (await waitingOnLock(db, handle.id, attempt))
          );
        }, 45_000);
        await stop(child);
      }
      const worker = await startWorker(
        runtime,
        workerOptions({
          name: `survivor-${backend}`,
          queues: ['aggregation'],
          lockDurationMs: 2000,
          stalledIntervalMs: 500,
          lostJobCheckSeconds: 0.5,
          lostJobGraceSeconds: 0,
        }),
      );
      try {
        const run = await eventually(async () => {
          const r = await handle.info();
          return r !== undefined && ['failed', 'succeeded', 'revoked', 'timed_out'].includes(r.state)
            ? r
            : undefined;
        }, 45_000);
        expect(run).toMatchObject({ state: 'failed', attempts: 3 });
        expect(run.error).toMatch(/stopped during|gave up/);
        expect(run.finishedAt).not.toBeNull();
        // No fourth attempt, and no session of the dead attempts left waiting on the lock (they are
        // terminated right after the run is failed; a terminated backend takes a moment to go).
        await eventually(async () => (await runSessions(db, handle.id)) === 0, 10_000);
        await blocker.query('COMMIT');
        await new Promise((r) => setTimeout(r, 1500));
        expect(await handle.info()).toMatchObject({ state: 'failed', attempts: 3 });
        // Terminate and revoke answer honestly for a finished run.
        const control = createControl(runtime);
        expect(await control.terminate(handle.id)).toMatchObject({ action: 'none', state: 'failed' });
      } finally {
        await worker.close();
      }
    } finally {
      for (const child of children) await stop(child);
      await blocker.query('ROLLBACK').catch(() => undefined);
      blocker.release();
    }
  });

  it('a stalled worker that resumes after a takeover writes nothing: one success, by the new owner', async () => {
    const db = await createTestDatabase();
    await writeSourceRows(db);
    const namespace = namespaceFor(backend);
    const runtime = await testRuntime(backend, db, { namespace });
    const blocker = await db.pool.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE analytics.user_activity_hourly IN ACCESS EXCLUSIVE MODE');
    const stalled = spawnWorker(backend, db, namespace, 'stalled');
    let released = false;
    try {
      const handle = await runtime.enqueue('hourly_rollup', {});
      await eventually(async () => await waitingOnLock(db, handle.id, 1), 45_000);
      stalled.child.kill('SIGSTOP');
      const worker = await startWorker(
        runtime,
        workerOptions({
          name: `owner-${backend}`,
          queues: ['aggregation'],
          lockDurationMs: 2000,
          stalledIntervalMs: 500,
        }),
      );
      try {
        await eventually(async () => await waitingOnLock(db, handle.id, 2), 45_000);
        // The takeover terminated the stalled attempt's session before starting its own.
        await eventually(async () => (await runSessions(db, handle.id)) === 1, 10_000);
        expect(await handle.info()).toMatchObject({ state: 'running', attempts: 2, worker: worker.name });
        await blocker.query('COMMIT');
        released = true;
        await handle.get({ timeout: 30 });
        stalled.child.kill('SIGCONT');
        // The resumed worker finds its lease gone (or its outcome fenced) and says so.
        await eventually(async () => /no longer this worker's/.test(stalled.output()), 30_000);
        await new Promise((r) => setTimeout(r, 1000));
        expect(await handle.info()).toMatchObject({ state: 'succeeded', attempts: 2, worker: worker.name });
        await assertRollupsMatchOracle(db.pool, 'UTC', { tables: hourlyTables });
      } finally {
        await worker.close();
      }
    } finally {
      stalled.child.kill('SIGCONT');
      await stop(stalled.child);
      if (!released) await blocker.query('ROLLBACK').catch(() => undefined);
      blocker.release();
    }
  });

  it('a retrying run whose job the broker lost is sent again with the delay it had left', async () => {
    const db = await createTestDatabase();
    const runtime = await testRuntime(backend, db, { env: { TASK_RETRY_BACKOFF_MS: '4000' } });
    const worker = await startWorker(
      runtime,
      workerOptions({
        name: `w-${backend}-lost`,
        queues: ['maintenance'],
        lostJobCheckSeconds: 0.3,
        lostJobGraceSeconds: 0,
      }),
    );
    try {
      const handle = await runtime.enqueue('test_flaky', { kwargs: { succeed_on: 2 } });
      const retrying = await eventually(async () => {
        const r = await handle.info();
        return r?.state === 'retrying' ? r : undefined;
      });
      const due = retrying.notBefore;
      expect(due).not.toBeNull();
      const queue = runtime.broker.queue('maintenance');
      await queue.remove(handle.id);
      // Sent again, still delayed: not run at once.
      const resent = await eventually(async () => {
        const job = await queue.getJob(handle.id);
        return job === undefined ? undefined : job;
      });
      expect(await resent.getState()).toBe('delayed');
      await handle.get({ timeout: 30 });
      const run = await handle.info();
      expect(run).toMatchObject({ state: 'succeeded', attempts: 2 });
      expect(run?.startedAt?.getTime()).toBeGreaterThanOrEqual((due?.getTime() ?? 0) - 250);
    } finally {
      await worker.close();
    }
  });

  it('the reaper settles runs whose worker died: sent again, or failed when no attempt is left', async () => {
    const db = await createTestDatabase();
    const runtime = await testRuntime(backend, db, { env: { TASK_MAX_RETRIES: '1' } });
    const orphan = async (attempts: number): Promise<string> => {
      const id = randomUUID();
      await db.pool.query(
        `INSERT INTO aggjobs.task_runs (id, task, args, state, queue, worker, attempts, started_at,
                                        lease_token, lease_expires_at)
         VALUES ($1, 'test_flaky', '{"succeed_on": 1}', 'running', 'maintenance', 'gone@nowhere', $2,
                 now() - interval '1 minute', 'old-token', now() - interval '10 seconds')`,
        [id, attempts],
      );
      return id;
    };
    const retried = await orphan(1);
    const exhausted = await orphan(2);
    const logger = createLogger('silent');
    expect(await reapRuns(runtime, { queues: ['maintenance'], lostJobGraceSeconds: 60, logger })).toBe(2);
    const state = async (id: string): Promise<Record<string, unknown> | undefined> =>
      (await db.pool.query('SELECT state, error, lease_token FROM aggjobs.task_runs WHERE id = $1', [id]))
        .rows[0] as Record<string, unknown> | undefined;
    expect(await state(retried)).toMatchObject({
      state: 'retrying',
      lease_token: null,
      error: expect.stringMatching(/gone@nowhere stopped during attempt 1 and the broker lost its job/),
    });
    expect(await runtime.broker.queue('maintenance').getJob(retried)).toBeDefined();
    expect(await state(exhausted)).toMatchObject({
      state: 'failed',
      error: expect.stringMatching(/the last of 2/),
    });
    // A second pass changes nothing: the resent job is pending, the failed run is final.
    expect(await reapRuns(runtime, { queues: ['maintenance'], lostJobGraceSeconds: 60, logger })).toBe(0);
    // The resent run then runs once, as attempt 2.
    const worker = await startWorker(
      runtime,
      workerOptions({ name: `w-${backend}-reap`, queues: ['maintenance'] }),
    );
    try {
      await eventually(async () => (await state(retried))?.state === 'succeeded');
      const { rows } = await db.pool.query('SELECT attempts FROM aggjobs.task_runs WHERE id = $1', [retried]);
      expect(rows[0]).toEqual({ attempts: 2 });
    } finally {
      await worker.close();
    }
  });

  it('a terminate whose notification was lost is seen at the next lease renewal', async () => {
    const db = await createTestDatabase();
    const runtime = await testRuntime(backend, db);
    const worker = await startWorker(
      runtime,
      workerOptions({ name: `w-${backend}-term`, queues: ['aggregation'], lockDurationMs: 1500 }),
    );
    try {
      const handle = await runtime.enqueue('test_sleep', { kwargs: { ms: 30_000 } });
      await eventually(async () => (await handle.state()) === 'running');
      // Recorded on the run only, as when the worker's control session is down: no NOTIFY.
      expect(await requestTermination(db.pool, handle.id)).toBe(true);
      const run = await eventually(async () => {
        const r = await handle.info();
        return r?.state === 'revoked' ? r : undefined;
      }, 10_000);
      expect(run).toMatchObject({ attempts: 1, error: 'terminated by an operator while running' });
    } finally {
      await worker.close();
    }
  });

  it('a worker on two queues with a backlog holds no more jobs than its concurrency, and starts none after shutdown', async () => {
    const db = await createTestDatabase();
    await db.pool.query(TALLY_TABLE_SQL);
    const runtime = await testRuntime(backend, db, { taskModules: tallyTasks });
    const handles: Awaited<ReturnType<typeof runtime.enqueue>>[] = [];
    for (let i = 0; i < 6; i += 1) {
      handles.push(await runtime.enqueue('test_tally_aggregation', { kwargs: { key: `a${i}`, ms: 1500 } }));
      handles.push(await runtime.enqueue('test_tally_maintenance', { kwargs: { key: `m${i}`, ms: 1500 } }));
    }
    const worker = await startWorker(
      runtime,
      workerOptions({ name: `w-${backend}-two`, concurrency: 2, shutdownGraceSeconds: 1 }),
    );
    const heldByBroker = async (): Promise<number> => {
      const counts = await runtime.broker.counts();
      return Object.values(counts).reduce((s, c) => s + c.active, 0);
    };
    let maxHeld = 0;
    let maxRunning = 0;
    const started = Date.now();
    while (Date.now() - started < 2500) {
      maxHeld = Math.max(maxHeld, await heldByBroker());
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*) AS n FROM aggjobs.task_runs WHERE state = 'running'`,
      );
      maxRunning = Math.max(maxRunning, rows[0]?.n ?? 0);
      await new Promise((r) => setTimeout(r, 50));
    }
    const closing = new Date();
    await worker.close();
    expect(maxHeld).toBeLessThanOrEqual(2);
    expect(maxRunning).toBeLessThanOrEqual(2);
    expect(await heldByBroker()).toBe(0);
    const { rows: after } = await db.pool.query(
      `SELECT task, args, state, attempts, started_at, finished_at, error, $1::timestamptz AS closing, now() AS now FROM aggjobs.task_runs WHERE started_at > $1`,
      [closing],
    );
    expect(after).toEqual([]);
    const states = async (): Promise<string[]> =>
      await Promise.all(handles.map(async (h) => (await h.state()) ?? 'missing'));
    // Nothing is left running; what did not finish waits for the next worker.
    expect((await states()).every((s) => ['succeeded', 'queued', 'retrying'].includes(s))).toBe(true);

    const next = await startWorker(runtime, workerOptions({ name: `w-${backend}-after`, concurrency: 4 }));
    try {
      await eventually(async () => (await states()).every((s) => s === 'succeeded'), 40_000);
    } finally {
      await next.close();
    }
    // Every run counted once: none ran twice, none was lost.
    const { rows: tally } = await db.pool.query<{ key: string; n: number }>(
      'SELECT key, n FROM public.test_tally ORDER BY key',
    );
    expect(tally).toHaveLength(12);
    expect(tally.every((r) => r.n === 1)).toBe(true);
  });

  it('a shutdown waits for the running job of a queue cancelled at run time, then stops it to run again', async () => {
    const db = await createTestDatabase();
    await db.pool.query(TALLY_TABLE_SQL);
    const runtime = await testRuntime(backend, db, { taskModules: tallyTasks });
    const name = `w-${backend}-cancelled`;
    const worker = await startWorker(
      runtime,
      workerOptions({ name, concurrency: 2, shutdownGraceSeconds: 1 }),
    );
    const long = await runtime.enqueue('test_tally_maintenance', { kwargs: { key: 'long', ms: 8000 } });
    await eventually(async () => (await long.state()) === 'running', 15_000);
    // The queue is cancelled while its job runs: the job goes on (Celery's cancel_consumer).
    const control = createControl(runtime);
    await control.cancelConsumer(name, 'maintenance');
    await eventually(async () => !worker.stats().queues.includes('maintenance'), 10_000);
    expect(await long.state()).toBe('running');
    const closingAt = Date.now();
    await worker.close();
    // The close waited for that job through its grace period, then stopped it: it will run again.
    expect(Date.now() - closingAt).toBeGreaterThanOrEqual(900);
    const run = await control.run(long.id);
    expect(run).toMatchObject({ state: 'retrying', attempts: 1, error: 'the worker shut down while it ran' });

    const next = await startWorker(runtime, workerOptions({ name: `${name}-after`, concurrency: 1 }));
    try {
      await eventually(async () => (await long.state()) === 'succeeded', 40_000);
    } finally {
      await next.close();
    }
    expect(await control.run(long.id)).toMatchObject({ state: 'succeeded', attempts: 2 });
    const { rows: tally } = await db.pool.query<{ key: string; n: number }>(
      'SELECT key, n FROM public.test_tally',
    );
    expect(tally).toEqual([{ key: 'long', n: 1 }]);
  });
});

describe('a worker given its own running job again, on Redis', () => {
  it('stops the earlier attempt at once, before it commits: the run counts one execution', async () => {
    const db = await createTestDatabase();
    await db.pool.query(TALLY_TABLE_SQL);
    const runtime = await testRuntime('redis', db, { taskModules: tallyTasks });
    const worker = await startWorker(
      runtime,
      workerOptions({
        name: 'w-redis-self',
        concurrency: 2,
        queues: ['maintenance'],
        lockDurationMs: 30_000,
        stalledIntervalMs: 500,
      }),
    );
    try {
      const handle = await runtime.enqueue('test_tally_maintenance', { kwargs: { key: 'self', ms: 2500 } });
      await eventually(async () => (await handle.state()) === 'running');
      // The job's lock vanishes (as when Redis lost it): BullMQ's stall check puts the job back, and
      // this same worker fetches it while the first attempt still sleeps with a valid lease.
      const redis = runtime.broker.redis;
      if (redis === undefined) throw new Error('a Redis broker was expected');
      expect(await redis.del(`${runtime.broker.namespace}:maintenance:${handle.id}:lock`)).toBe(1);
      await handle.get({ timeout: 30 });
      expect(await handle.info()).toMatchObject({ state: 'succeeded', attempts: 2 });
      // The first attempt was stopped at the takeover, not at its next lease renewal (10 s away):
      // its insert never happened.
      await new Promise((r) => setTimeout(r, 1500));
      const { rows } = await db.pool.query('SELECT n FROM public.test_tally WHERE key = $1', ['self']);
      expect(rows).toEqual([{ n: 1 }]);
    } finally {
      await worker.close();
    }
  });
});
