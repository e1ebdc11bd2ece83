/**
 * A task thread's pool, kept across runs: every session a run checks out carries that run's
 * application_name before the run uses it, so run-sessions.ts kills exactly an attempt's sessions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idleSessionName, RunSessionPool } from '../../src/runtime/run-session-pool.ts';
import { terminateRunSessions } from '../../src/runtime/run-sessions.ts';
import { runApplicationName } from '../../src/runtime/thread-protocol.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const db: TestDatabase = await createTestDatabase();
let pool: RunSessionPool;

const nameOf = async (q: Pick<RunSessionPool, 'query'>): Promise<{ name: string; pid: number }> => {
  const { rows } = await q.query<{ name: string; pid: number }>(
    `SELECT current_setting('application_name') AS name, pg_backend_pid() AS pid`,
  );
  return rows[0] ?? { name: '', pid: 0 };
};

describe('RunSessionPool', () => {
  beforeAll(() => {
    pool = new RunSessionPool({ connectionString: db.url, max: 2 });
  });
  afterAll(async () => {
    await pool.end();
  });

  it("a session that served an earlier run comes to the next one without that run's state", async () => {
    const single = new RunSessionPool({ connectionString: db.url, max: 1 });
    try {
      single.nameSessions(runApplicationName('run-leaky', 1));
      const leaky = await single.connect();
      const { rows: before } = await leaky.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await leaky.query(`SET statement_timeout = '1234ms'`);
      await leaky.query('SELECT pg_advisory_lock(424242)');
      await leaky.query('CREATE TEMP TABLE leaked (x int)');
      leaky.release();

      single.nameSessions(runApplicationName('run-next', 1));
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
    pool.nameSessions(runApplicationName('run-a', 1));
    const first = await nameOf(pool);
    expect(first.name).toBe('aggjobs run run-a #1');

    pool.nameSessions(runApplicationName('run-b', 2));
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
    pool.nameSessions(runApplicationName('run-c', 1));
    const held = await pool.connect();
    const busy = held.query('SELECT pg_sleep(30)').catch((error: unknown) => error);
    const other = await nameOf(pool); // the pool's second session, named for run-c too
    expect(other.name).toBe('aggjobs run run-c #1');
    expect(await terminateRunSessions(db.pool, 'run-b', 2)).toBe(0);
    expect(await terminateRunSessions(db.pool, 'run-c', 1)).toBe(2);
    expect(await busy).toBeInstanceOf(Error);
    held.release(new Error('killed'));
    // The pool replaces the dead sessions: the next run gets working ones, named for it.
    pool.nameSessions(runApplicationName('run-d', 1));
    expect((await nameOf(pool)).name).toBe('aggjobs run run-d #1');
  });

  it('a checkout still connecting when its run is killed never serves it: nothing runs under the run', async () => {
    // A pool of its own with no session yet: the statement's checkout opens one, still under way when
    // the kill comes (the hard limit's order: refuse checkouts, then terminate by name).
    const killed = new RunSessionPool({ connectionString: db.url, max: 2 });
    try {
      killed.nameSessions(runApplicationName('run-k', 1));
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
    pool.nameSessions(runApplicationName('run-e', 1));
    const client = await pool.connect();
    try {
      await client.query('RESET ALL');
      expect((await nameOf(client)).name).toBe(idleSessionName);
    } finally {
      client.release();
    }
  });
});
