/**
 * A task thread's pool, kept across runs: every session a run checks out carries that run's
 * application_name before the run uses it, so run-sessions.ts kills exactly an attempt's sessions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idleSessionName, RunSessionPool } from '../../src/runtime/run-session-pool.ts';
import { terminateRunSessions } from '../../src/runtime/run-sessions.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const db: TestDatabase = await createTestDatabase();
let pool: RunSessionPool;

const nameOf = async (q: Pick<RunSessionPool, 'query'>): Promise<{ name: string; pid: number }> => {
  const { rows } = await q.query<{ name: string; pid: number }>(
    `SELECT current_setting('application_name') AS name, pg_backend_pid() AS pid`,
  );
  return rows[0] ?? { name: '', pid: 0 };
};

/** The run's row as its worker's claim leaves it: `attempt` running. */
async function running(runId: string, attempt: number): Promise<void> {
  await db.pool.query(
    `INSERT INTO aggjobs.task_runs (id, task, state, queue, attempts) VALUES ($1, 'test_sleep', 'running', 'maintenance', $2)
     ON CONFLICT (id) DO UPDATE SET state = 'running', attempts = EXCLUDED.attempts`,
    [runId, attempt],
  );
}

describe('RunSessionPool', () => {
  beforeAll(async () => {
    pool = new RunSessionPool({ connectionString: db.url, max: 2 });
    for (const [id, attempt] of [
      ['run-leaky', 1],
      ['run-next', 1],
      ['run-a', 1],
      ['run-b', 2],
      ['run-c', 1],
      ['run-d', 1],
      ['run-k', 1],
      ['run-e', 1],
    ] as const)
      await running(id, attempt);
  });
  afterAll(async () => {
    await pool.end();
  });

  it("a session that served an earlier run comes to the next one without that run's state", async () => {
    const single = new RunSessionPool({ connectionString: db.url, max: 1 });
    try {
      single.serveRun({ runId: 'run-leaky', attempt: 1 });
      const leaky = await single.connect();
      const { rows: before } = await leaky.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await leaky.query(`SET statement_timeout = '1234ms'`);
      await leaky.query('SELECT pg_advisory_lock(424242)');
      await leaky.query('CREATE TEMP TABLE leaked (x int)');
      leaky.release();

      single.serveRun({ runId: 'run-next', attempt: 1 });
      const next = await single.connect();
      try {
        const { rows } = await next.query<{
          pid: number;
          timeout: string;
          locks: number;
          temp: boolean;
          name: string;
        }>(
          `SELECT pg_backend_pid() AS pid, current_setting('statement_timeout') AS timeout,
                  (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS locks,
                  to_regclass('pg_temp.leaked') IS NOT NULL AS temp, current_setting('application_name') AS name`,
        );
        expect(rows[0]).toEqual({
          pid: before[0]?.pid,
          timeout: '0',
          locks: 0,
          temp: false,
          name: 'aggjobs run run-next #1',
        });
      } finally {
        next.release();
      }
    } finally {
      await single.end();
    }
  });

  it('names a reused session for each run that checks it out, through query() and connect()', async () => {
    pool.serveRun({ runId: 'run-a', attempt: 1 });
    const first = await nameOf(pool);
    expect(first.name).toBe('aggjobs run run-a #1');

    pool.serveRun({ runId: 'run-b', attempt: 2 });
    const client = await pool.connect();
    try {
      const second = await nameOf(client);
      expect(second).toEqual({ name: 'aggjobs run run-b #2', pid: first.pid });
      expect(pool.settled).toBe(false);
    } finally {
      client.release();
    }
    expect(pool.settled).toBe(true);
  });

  it("a kill finds the attempt's sessions, checked out or idle, and no other run's", async () => {
    pool.serveRun({ runId: 'run-c', attempt: 1 });
    const held = await pool.connect();
    const busy = held.query('SELECT pg_sleep(30)').catch((error: unknown) => error);
    const other = await nameOf(pool); // the pool's second session, named for run-c too
    expect(other.name).toBe('aggjobs run run-c #1');
    expect(await terminateRunSessions(db.pool, 'run-b', 2)).toBe(0);
    expect(await terminateRunSessions(db.pool, 'run-c', 1)).toBe(2);
    expect(await busy).toBeInstanceOf(Error);
    held.release(new Error('killed'));
    // The pool replaces the dead sessions: the next run gets working ones, named for it.
    pool.serveRun({ runId: 'run-d', attempt: 1 });
    expect((await nameOf(pool)).name).toBe('aggjobs run run-d #1');
  });

  it('a checkout still connecting when its run is killed never serves it: nothing runs under the run', async () => {
    // A pool of its own with no session yet: the statement's checkout opens one, still under way when
    // the kill comes (the hard limit's order: refuse checkouts, then terminate by name).
    const killed = new RunSessionPool({ connectionString: db.url, max: 2 });
    try {
      killed.serveRun({ runId: 'run-k', attempt: 1 });
      const stuck = killed.query('SELECT pg_sleep(30)').then(
        () => 'the statement ran',
        (error: unknown) => error,
      );
      killed.refuseCheckouts(new Error('killed: hard_limit'));
      await terminateRunSessions(db.pool, 'run-k', 1);
      void killed.end();
      expect(await stuck).toEqual(new Error('killed: hard_limit'));
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND (application_name = $1 OR query = 'SELECT pg_sleep(30)')`,
        ['aggjobs run run-k #1'],
      );
      expect(rows[0]?.n).toBe(0);
      // And the next checkout is refused at once.
      await expect(killed.query('SELECT 1')).rejects.toThrow(/killed: hard_limit|after calling end/);
    } finally {
      await killed.end().catch(() => undefined);
    }
  });

  it('a session reset by the task falls back to the neutral name, never to another run', async () => {
    pool.serveRun({ runId: 'run-e', attempt: 1 });
    const client = await pool.connect();
    try {
      await client.query('RESET ALL');
      expect((await nameOf(client)).name).toBe(idleSessionName);
    } finally {
      client.release();
    }
  });

  it('a run taken over (or settled) gets no session it has not named yet: nothing it sends runs', async () => {
    // A stalled worker's view: it serves attempt 1 of run-t; meanwhile another worker claimed
    // attempt 2 and killed attempt 1's sessions. When the stalled one wakes up and its task opens a
    // session, the session is refused before the task can send anything on it.
    await running('run-t', 1);
    const stale = new RunSessionPool({ connectionString: db.url, max: 2 });
    try {
      stale.serveRun({ runId: 'run-t', attempt: 1 });
      expect((await nameOf(stale)).name).toBe('aggjobs run run-t #1'); // while it owns the attempt
      await running('run-t', 2); // the takeover's claim
      expect(await terminateRunSessions(db.pool, 'run-t')).toBe(1); // and its kill
      await db.pool.query('CREATE TABLE public.stale_writes (x int)');
      await expect(stale.query('INSERT INTO public.stale_writes VALUES (1)')).rejects.toThrow(
        /^(run run-t attempt 1 is no longer this worker's \(another worker took it over, or it was settled\): it gets no database session|terminating connection due to administrator command|Connection terminated unexpectedly)$/,
      );
      // Whichever error the first statement met (the killed session, or the fence), from here on
      // every checkout is a fresh session, and the fence refuses it.
      await expect(stale.query('INSERT INTO public.stale_writes VALUES (2)')).rejects.toThrow(
        "run run-t attempt 1 is no longer this worker's (another worker took it over, or it was settled): it gets no database session",
      );
      const { rows } = await db.pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM public.stale_writes',
      );
      expect(rows[0]?.n).toBe(0);
      // The attempt that owns the run now is served.
      stale.serveRun({ runId: 'run-t', attempt: 2 });
      await stale.query('INSERT INTO public.stale_writes VALUES (3)');
      // A run the reaper settled (failed) is refused too.
      await db.pool.query(`UPDATE aggjobs.task_runs SET state = 'failed' WHERE id = 'run-t'`);
      const other = new RunSessionPool({ connectionString: db.url, max: 1 });
      other.serveRun({ runId: 'run-t', attempt: 2 });
      await expect(other.query('INSERT INTO public.stale_writes VALUES (4)')).rejects.toThrow(
        /no longer this worker's/,
      );
      await other.end();
      const { rows: after } = await db.pool.query<{ x: number }>('SELECT x FROM public.stale_writes');
      expect(after).toEqual([{ x: 3 }]);
    } finally {
      await stale.end();
    }
  });
});
