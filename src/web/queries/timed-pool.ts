import type { Pool } from '../../db/index.ts';

/**
 * How long a dashboard query may run, and wait for a lock, before PostgreSQL cancels it. A page
 * refreshes every 4–9 s: a query that needs longer is better answered "could not read" than not
 * at all (issue 15: while a session held ACCESS EXCLUSIVE on a rollup table, /rollups hung over
 * 60 s). The dashboard only reads, so a lock it waits for is someone else's write or DDL.
 */
export const DASHBOARD_STATEMENT_TIMEOUT_MS = 5000;
export const DASHBOARD_LOCK_TIMEOUT_MS = 1000;

/**
 * The pool with every `query` run under the dashboard's statement and lock timeouts: each runs in
 * its own transaction that sets them LOCAL (the pool may be shared with the runtime, whose sessions
 * must keep their own settings). One round trip more than a bare query, and one for COMMIT. Only
 * the promise forms of `query` are supported (what the dashboard's queries use); `connect` is
 * passed through untimed.
 */
export function timedPool(
  pool: Pool,
  timeouts = { statementMs: DASHBOARD_STATEMENT_TIMEOUT_MS, lockMs: DASHBOARD_LOCK_TIMEOUT_MS },
): Pool {
  const setup =
    `BEGIN; SET LOCAL statement_timeout = ${Math.trunc(timeouts.statementMs)}; ` +
    `SET LOCAL lock_timeout = ${Math.trunc(timeouts.lockMs)}`;
  const query = async (text: unknown, values?: unknown): Promise<unknown> => {
    const client = await pool.connect();
    let broken: unknown;
    try {
      await client.query(setup);
      const result = await client.query(text as string, values as unknown[]);
      await client.query('COMMIT');
      return result;
    } catch (error: unknown) {
      await client.query('ROLLBACK').catch((e: unknown) => {
        broken = e;
      });
      throw error;
    } finally {
      // A session that could not roll back is not put back in the pool.
      client.release(broken instanceof Error ? broken : undefined);
    }
  };
  return new Proxy(pool, {
    get(target, prop, receiver) {
      if (prop === 'query') return query;
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
