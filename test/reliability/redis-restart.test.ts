import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/index.ts';
import { createRuntime, startBeat, startWorker, type Runtime } from '../../src/runtime/index.ts';
import { taskRegistry } from '../../src/tasks/index.ts';
import { latestSlotAtOrBefore, slotsAfter } from '../support/cron-oracle.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { eventually, testRuntime, testSettings, workerOptions } from '../runtime/runtime-harness.ts';
import { spawnCli } from './cli-process.ts';
import { startOwnRedis, withTimeout, type OwnRedis } from './own-servers.ts';

/**
 * Redis (our own redis-server, never the shared one) killed with -9 and restarted while a worker and
 * a beat run on it. With AOF (`appendfsync always`) queued jobs survive and every schedule slot is
 * enqueued exactly once; without persistence, what was queued is gone from Redis and the workers
 * send it again from the run log.
 */
const MINUTE = 60_000;
const T0 = new Date('2026-11-29T10:07:00Z');
const servers: OwnRedis[] = [];
afterAll(async () => {
  for (const s of servers) await s.destroy();
});

async function runtimeOn(db: TestDatabase, redisUrl: string, now: () => Date): Promise<Runtime> {
  const settings = testSettings('redis', { REDIS_URL: redisUrl });
  const runtime = await createRuntime({
    settings,
    pool: db.pool,
    databaseUrl: db.url,
    logger: createLogger(settings.logLevel),
    namespace: `{r${randomBytes(4).toString('hex')}}`,
    now,
  });
  afterAll(async () => {
    await runtime.close();
  });
  return runtime;
}

async function states(db: TestDatabase): Promise<Record<string, number>> {
  const { rows } = await db.pool.query<{ state: string; n: number }>(
    'SELECT state, count(*)::int AS n FROM aggjobs.task_runs GROUP BY 1',
  );
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

describe('Redis restarted under a worker and a beat', () => {
  it('with AOF: queued jobs survive, both reconnect, every slot is enqueued exactly once', async () => {
    const redis = await startOwnRedis(['--save', '', '--appendonly', 'yes', '--appendfsync', 'always']);
    servers.push(redis);
    const db = await createTestDatabase();
    let t = T0.getTime();
    const now = (): Date => new Date(t);
    const runtime = await runtimeOn(db, redis.url(), now);
    // A tick during the outage waits in `send` until Redis is back, and the ticks after it queue
    // behind it (ticks are serialized); they then read the clock, which the test has moved on by
    // several periods. Under the default BEAT_CATCHUP=once the missed slots of a schedule are then
    // collapsed into one run — by design, as after any downtime. With `all` every slot must be
    // enqueued, exactly once: that is what this test checks.
    const beat = startBeat(runtime, { name: 'beat-r', tickMs: 3_600_000, catchup: 'all' });

    // Queued with no worker, then Redis killed: the jobs must come back from the AOF.
    const manual = await Promise.all([1, 2, 3].map(() => runtime.enqueue('health_check', {})));
    await beat.tick();
    await redis.kill();
    await redis.start();

    const worker = await startWorker(runtime, workerOptions({ name: 'w-redis-restart', concurrency: 2 }));
    try {
      for (const h of manual)
        expect(await h.get({ timeout: 30 })).toMatchObject({ status: expect.any(String) });

      // Killed again while the worker waits for jobs and the beat ticks through the outage.
      for (let step = 0; step < 6; step += 1) {
        if (step === 2) await redis.kill();
        t += 5 * MINUTE;
        // A tick during the outage claims its slot in the ledger and cannot send it; it must not hang
        // the test (ioredis queues the command until Redis is back).
        await withTimeout(beat.tick(), 3_000, 'beat tick').catch(() => undefined);
        if (step === 3) await redis.start();
      }
      await withTimeout(beat.tick(), 15_000, 'beat tick after restart');
      const end = new Date(t);

      // Every run ends succeeded: nothing queued forever, nothing running. (Generous: under a full
      // CI run the worker's reconnect backoff and two cores shared with other files slow this down.)
      await eventually(async () => {
        const s = await states(db);
        return Object.keys(s).every((k) => k === 'succeeded') ? s : undefined;
      }, 100_000).catch(async (error: unknown) => {
        throw new Error(`runs not all succeeded: ${JSON.stringify(await states(db))}`, { cause: error });
      });

      const { rows: unsent } = await db.pool.query(
        'SELECT task, slot FROM aggjobs.beat_slots WHERE NOT enqueued',
      );
      expect(unsent).toEqual([]);
      for (const task of Object.values(taskRegistry)) {
        if (task.schedule === undefined) continue;
        // Computed by the test's own cron oracle, not the beat's cron code under test.
        const cron = task.schedule.cron;
        const expected = 1 + slotsAfter(cron, latestSlotAtOrBefore(cron, T0, 'UTC') ?? T0, end, 'UTC').length;
        const { rows } = await db.pool.query<{ n: number; distinct_slots: number }>(
          `SELECT count(*)::int AS n, count(DISTINCT slot)::int AS distinct_slots FROM aggjobs.beat_slots WHERE task = $1`,
          [task.name],
        );
        expect(rows[0], task.name).toEqual({ n: expected, distinct_slots: expected });
        const runs = await db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM aggjobs.task_runs WHERE task = $1 AND id LIKE $2`,
          [task.name, `${task.name}@%`],
        );
        expect(runs.rows[0]?.n, task.name).toBe(expected);
      }
      // The worker is still taking jobs after the restarts.
      const after = await runtime.enqueue('health_check', {});
      expect(await after.get({ timeout: 20 })).toBeDefined();
    } finally {
      await worker.close();
      await beat.close();
    }
  }, 180_000);

  it('without persistence: the jobs Redis forgot are sent again from the run log, and run', async () => {
    const redis = await startOwnRedis(['--save', '', '--appendonly', 'no']);
    servers.push(redis);
    const db = await createTestDatabase();
    const runtime = await runtimeOn(db, redis.url(), () => new Date());
    const handles = await Promise.all([1, 2, 3].map(() => runtime.enqueue('health_check', {})));
    await redis.kill();
    await redis.start();
    // Redis came back empty: the three jobs are gone from the broker, their runs still `queued`.
    expect(await runtime.broker.counts()).toMatchObject({
      maintenance: expect.objectContaining({ waiting: 0 }),
    });
    for (const h of handles) expect((await h.info())?.state).toBe('queued');
    const worker = await startWorker(
      runtime,
      workerOptions({ name: 'w-redis-volatile', lostJobCheckSeconds: 1, lostJobGraceSeconds: 1 }),
    );
    try {
      // The worker finds runs queued without a job, sends them again under the same ids, and runs them.
      for (const h of handles) expect(await h.get({ timeout: 30 })).toBeDefined();
      for (const h of handles) expect((await h.info())?.state).toBe('succeeded');
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM aggjobs.task_runs WHERE task = 'health_check'`,
      );
      expect(rows[0]?.n).toBe(3); // sent again, not duplicated
    } finally {
      await worker.close();
    }
  });
  it('without persistence: a retrying run whose delayed job Redis forgot is sent again with its delay, and runs once more', async () => {
    const redis = await startOwnRedis(['--save', '', '--appendonly', 'no']);
    servers.push(redis);
    const db = await createTestDatabase();
    const runtime = await testRuntime('redis', db, {
      env: { REDIS_URL: redis.url(), TASK_RETRY_BACKOFF_MS: '6000' },
    });
    const worker = await startWorker(
      runtime,
      workerOptions({
        name: 'w-redis-retrying',
        queues: ['maintenance'],
        lostJobCheckSeconds: 0.3,
        lostJobGraceSeconds: 0,
      }),
    );
    try {
      // Attempt 1 fails with a transient error: the run waits `retrying` for its delayed job.
      const handle = await runtime.enqueue('test_flaky', { kwargs: { succeed_on: 2 } });
      const retrying = await eventually(async () => {
        const r = await handle.info();
        return r?.state === 'retrying' ? r : undefined;
      });
      const due = retrying.notBefore?.getTime() ?? 0;
      const queue = runtime.broker.queue('maintenance');
      expect(await (await queue.getJob(handle.id))?.getState()).toBe('delayed');

      // Redis dies with the delayed job and comes back empty.
      await redis.kill();
      const restartedAt = Date.now();
      await redis.start();

      // The reaper sends it again — a new job, made after the restart — still delayed (the restart
      // took far less than the 6 s backoff).
      const resent = await eventually(async () => {
        const job = await queue.getJob(handle.id).catch(() => undefined);
        return job !== undefined && job.timestamp >= restartedAt ? job : undefined;
      }, 20_000);
      if (Date.now() < due - 1000) expect(await resent.getState()).toBe('delayed');
      await handle.get({ timeout: 60 });

      // One run, two attempts (the failed one and the retry): not run at once, not run twice.
      const run = await handle.info();
      expect(run).toMatchObject({ state: 'succeeded', attempts: 2, result: { attempt: 2 } });
      expect(run?.startedAt?.getTime()).toBeGreaterThanOrEqual(due - 250);
      const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM aggjobs.task_runs');
      expect(rows[0]?.n).toBe(1);
    } finally {
      await worker.close();
    }
  }, 120_000);

  it('worker and beat processes survive a 3 s Redis outage: still alive, still leading, still taking jobs', async () => {
    const redis = await startOwnRedis(['--save', '', '--appendonly', 'yes', '--appendfsync', 'always']);
    servers.push(redis);
    const db = await createTestDatabase();
    const namespace = `{rp${randomBytes(4).toString('hex')}}`;
    const env = {
      DATABASE_URL: db.url,
      REDIS_URL: redis.url(),
      BROKER_KEY_PREFIX: namespace,
      LOG_LEVEL: 'info',
    };
    const worker = spawnCli(['worker', '-c', '2', '--hostname', 'w-proc'], env, 120_000);
    const beat = spawnCli(['beat'], env, 120_000);
    const settings = testSettings('redis', { REDIS_URL: redis.url() });
    const runtime = await createRuntime({
      settings,
      pool: db.pool,
      databaseUrl: db.url,
      logger: createLogger(settings.logLevel),
      namespace,
    });
    try {
      await worker.waitFor('broker:');
      await eventually(async () => {
        const { rows } = await db.pool.query('SELECT holder FROM aggjobs.beat_leader');
        return rows.length > 0;
      }, 30_000);
      // The beat's catch-up runs (one per schedule) and a manual one, before the outage.
      expect(await (await runtime.enqueue('health_check', {})).get({ timeout: 30 })).toBeDefined();
      await redis.kill();
      await new Promise((r) => setTimeout(r, 3000));
      await redis.start();
      const after = await runtime.enqueue('health_check', {});
      expect(await after.get({ timeout: 30 })).toBeDefined();
      expect((await after.info())?.worker).toContain('w-proc');
      expect(worker.child.exitCode).toBeNull();
      expect(beat.child.exitCode).toBeNull();
      // The lease is renewed after the outage.
      const since = new Date();
      await eventually(async () => {
        const { rows } = await db.pool.query<{ expires_at: Date }>(
          'SELECT expires_at FROM aggjobs.beat_leader',
        );
        return rows[0] !== undefined && rows[0].expires_at > since ? true : undefined;
      }, 30_000);
      // Every run enqueued, by the beat or by hand, ends succeeded; no slot unsent.
      await eventually(async () => {
        const s = await states(db);
        return Object.keys(s).length > 0 && Object.keys(s).every((k) => k === 'succeeded') ? s : undefined;
      }, 60_000);
      const { rows: unsent } = await db.pool.query('SELECT task FROM aggjobs.beat_slots WHERE NOT enqueued');
      expect(unsent).toEqual([]);
    } finally {
      await runtime.close();
      const codes = await Promise.all([worker.stop(), beat.stop()]);
      expect(codes, worker.output() + beat.output()).toEqual([0, 0]);
    }
  }, 150_000);
});
