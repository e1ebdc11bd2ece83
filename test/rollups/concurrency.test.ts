import { beforeAll, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../../src/db/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { compareWithOracle } from '../support/oracle.ts';
import { refreshAll } from '../support/rollup-helpers.ts';

const ZONE = 'Europe/Berlin';
let db: TestDatabase;
let refreshPool: Pool;

beforeAll(async () => {
  db = await createTestDatabase({ poolMax: 12 });
  refreshPool = createPool({ connectionString: db.url, max: 4, applicationName: 'aggjobs-refresh-test' });
  return async () => {
    await refreshPool.end();
  };
});

/** One application writer: inserts (some late), completions, moves and deletes, until `stop`. */
async function writer(pool: Pool, seed: number, stop: { done: boolean }): Promise<number> {
  let n = 0;
  let x = seed;
  const rand = (k: number): number => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % k;
  };
  while (!stop.done) {
    const ws = rand(5) + 1;
    const late = rand(4) === 0 ? `${rand(72)} hours` : '0 hours';
    switch (rand(6)) {
      case 0:
      case 1:
        await pool.query(
          `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at)
           VALUES ($1, $2, $3, 'running', now() - $4::interval)`,
          [ws, rand(20), rand(7), late],
        );
        break;
      case 2:
        await pool.query(
          `UPDATE public.execution_logs SET status = 'success', duration_ms = $2, credits_used = $3, completed_at = now()
           WHERE id = (SELECT id FROM public.execution_logs WHERE status = 'running' AND workspace_id = $1 LIMIT 1)`,
          [ws, rand(100000), rand(1000) / 10],
        );
        break;
      case 3:
        await pool.query(
          `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id)
           VALUES ($1, $2, 'page_view', now() - $3::interval, $4)`,
          [ws, rand(20), late, `s${rand(9)}`],
        );
        break;
      case 4:
        await pool.query(
          `INSERT INTO public.credit_transactions (workspace_id, user_id, source, credits, created_at)
           VALUES ($1, $2, 'api', $3, now() - $4::interval)`,
          [ws, rand(20), rand(500) - 50, late],
        );
        break;
      case 5:
        await pool.query(
          `WITH victim AS (SELECT id FROM public.execution_logs WHERE workspace_id = $1 ORDER BY id LIMIT 1)
           UPDATE public.execution_logs e SET workspace_id = $2, started_at = started_at - interval '1 day'
           FROM victim WHERE e.id = victim.id`,
          [ws, rand(5) + 1],
        );
        await pool.query(
          'DELETE FROM public.credit_transactions WHERE id = (SELECT id FROM public.credit_transactions WHERE workspace_id = $1 LIMIT 1)',
          [ws],
        );
        break;
    }
    n += 1;
  }
  return n;
}

describe('refreshes racing each other and the application writers', () => {
  it('end equal to the oracle, with no error, no deadlock and no lock stronger than ROW EXCLUSIVE on sources', async () => {
    const stop = { done: false };
    const writers = [1, 2, 3, 4].map((seed) => writer(db.pool, seed, stop));
    const strongLocks: string[] = [];
    const sampler = (async () => {
      while (!stop.done) {
        const { rows } = await db.pool.query<{ mode: string; relname: string }>(
          `SELECT l.mode, c.relname FROM pg_locks l
           JOIN pg_stat_activity a ON a.pid = l.pid
           JOIN pg_class c ON c.oid = l.relation
           WHERE a.application_name = 'aggjobs-refresh-test' AND a.datname = current_database()
             AND c.relname IN ('execution_logs', 'user_activity_events', 'credit_transactions')
             AND l.mode NOT IN ('AccessShareLock', 'RowShareLock', 'RowExclusiveLock')`,
        );
        strongLocks.push(...rows.map((r) => `${r.relname}:${r.mode}`));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const refreshers = [0, 1].map(async () => {
      let runs = 0;
      while (!stop.done) {
        await refreshAll(refreshPool, ZONE);
        runs += 1;
      }
      return runs;
    });
    await new Promise((r) => setTimeout(r, 8_000));
    stop.done = true;
    const written = await Promise.all(writers);
    const runs = await Promise.all(refreshers);
    await sampler;
    expect(written.reduce((a, b) => a + b, 0)).toBeGreaterThan(100);
    expect(runs.every((r) => r > 0)).toBe(true);
    expect(strongLocks).toEqual([]);
    await refreshAll(refreshPool, ZONE);
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
  }, 60_000);
});
