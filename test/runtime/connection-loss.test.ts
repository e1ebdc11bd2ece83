/**
 * A run's database session killed under it (pg_terminate_backend, what an operator or a failover
 * does) is a lost connection: a transient failure, retried — not a crashed task thread.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  finalStates,
  startWorker,
  type AsyncResult,
  type RunRecord,
  type Runtime,
  type WorkerHandle,
} from '../../src/runtime/index.ts';
import type { PoolClient } from '../../src/db/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { assertRollupsMatchOracle } from '../support/oracle.ts';
import { backends, eventually, testRuntime, workerOptions, type Backend } from './runtime-harness.ts';

const databases: Record<Backend, TestDatabase> = {
  redis: await createTestDatabase(),
  postgres: await createTestDatabase(),
};

// A run's sessions are named `aggjobs run <id>…` (the suffix may carry more, e.g. the attempt).
const RUN_SESSIONS = `application_name LIKE 'aggjobs run %' AND application_name LIKE '%' || $1 || '%'`;

/** Resolves once one of the run's sessions (other than those in `killed`) waits on a lock. */
async function runWaitsOnLock(db: TestDatabase, runId: string, killed: number[] = []): Promise<void> {
  await eventually(async () => {
    const { rows } = await db.pool.query(
      `SELECT 1 FROM pg_stat_activity
       WHERE ${RUN_SESSIONS} AND wait_event_type = 'Lock' AND pid <> ALL($2::int[])`,
      [runId, killed],
    );
    return rows.length > 0;
  }, 30_000);
}

/** Terminates every session of the run; returns their pids. */
async function terminateRunSessions(db: TestDatabase, runId: string): Promise<number[]> {
  // In the select list, not the WHERE: it must run only on the rows the filter kept.
  const { rows } = await db.pool.query<{ pid: number; killed: boolean }>(
    `SELECT pid, pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE ${RUN_SESSIONS}`,
    [runId],
  );
  return rows.filter((r) => r.killed).map((r) => r.pid);
}

/**
 * Holds a lock (taken by `lock` on a transaction of its own) while `handle`'s run waits on it,
 * kills the run's sessions, waits for its second attempt to wait on the same lock, then lets go.
 * Returns the run's record once it has ended.
 */
async function killWhileWaiting(
  db: TestDatabase,
  handle: AsyncResult<unknown>,
  lock: (client: PoolClient) => Promise<unknown>,
): Promise<RunRecord> {
  const blocker = await db.pool.connect();
  let open = true;
  try {
    await blocker.query('BEGIN');
    await lock(blocker);
    await runWaitsOnLock(db, handle.id);
    const killed = await terminateRunSessions(db, handle.id);
    expect(killed.length).toBeGreaterThan(0);
    // A second attempt, not a failed run: stop at whichever comes first.
    const retried = await eventually(async () => {
      const run = await handle.info();
      if (run === undefined) return undefined;
      return run.attempts >= 2 || finalStates.includes(run.state) ? run : undefined;
    }, 30_000);
    expect(retried, `the run after its session was killed: ${retried.error ?? ''}`).toMatchObject({
      attempts: 2,
    });
    // The killed sessions may linger in pg_stat_activity for a moment: wait for the new attempt's.
    await runWaitsOnLock(db, handle.id, killed);
    await blocker.query('COMMIT');
    open = false;
  } finally {
    if (open) await blocker.query('ROLLBACK').catch(() => undefined);
    blocker.release();
  }
  await handle.get({ timeout: 30 }).catch(() => undefined);
  const run = await handle.info();
  if (run === undefined) throw new Error(`run ${handle.id} has no record`);
  return run;
}

describe.each(backends)('a run whose session is terminated while it waits on a lock, on %s', (backend) => {
  const db = databases[backend];
  let runtime: Runtime;
  let worker: WorkerHandle;

  beforeAll(async () => {
    runtime = await testRuntime(backend, db);
    worker = await startWorker(runtime, workerOptions({ name: `w-${backend}-connection-loss` }));
    await db.pool.query('CREATE TABLE public.test_counters (key text PRIMARY KEY, n int NOT NULL)');
  });
  afterAll(async () => {
    await worker?.close();
  });

  it('a transaction is retried and commits once', async () => {
    await db.pool.query(`INSERT INTO public.test_counters VALUES ('once', 0)`);
    const handle = await runtime.enqueue('test_locked_increment', { kwargs: { key: 'once' } });
    const run = await killWhileWaiting(db, handle, (c) =>
      c.query(`SELECT 1 FROM public.test_counters WHERE key = 'once' FOR UPDATE`),
    );
    expect(run, run.error ?? '').toMatchObject({ state: 'succeeded', attempts: 2, result: { n: 1 } });
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT n FROM public.test_counters WHERE key = 'once'`,
    );
    expect(rows[0]?.n).toBe(1);
  });

  it('a rollup refresh is retried and ends as a plain GROUP BY', async () => {
    await db.pool.query(
      `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id)
       SELECT 1 + i % 13, 1 + i % 57, (ARRAY['login','view','click'])[1 + i % 3],
              now() - make_interval(mins => (i * 41) % (2 * 24 * 60)), 's' || (i % 97)
       FROM generate_series(1, 2000) i`,
    );
    const handle = await runtime.enqueue('hourly_rollup', {});
    // The refresh waits inside its transaction, holding the rollup's advisory lock, when killed.
    const run = await killWhileWaiting(db, handle, (c) =>
      c.query('LOCK TABLE analytics.user_activity_hourly IN ACCESS EXCLUSIVE MODE'),
    );
    expect(run, run.error ?? '').toMatchObject({ state: 'succeeded', attempts: 2 });
    await assertRollupsMatchOracle(db.pool, 'UTC', { tables: ['user_activity_hourly'] });
    const { rows } = await db.pool.query<{ n: number }>(
      'SELECT count(*) AS n FROM analytics.user_activity_hourly',
    );
    expect(rows[0]?.n).toBeGreaterThan(0);
  });
});
