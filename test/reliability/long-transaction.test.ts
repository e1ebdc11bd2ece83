import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createPool, startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/index.ts';
import { prepareDatabase } from '../../src/rollups/index.ts';
import { startWorker } from '../../src/runtime/index.ts';
import { createDashboardApp } from '../../src/web/index.ts';
import type { TestDatabase } from '../support/database.ts';
import { assertRollupsMatchOracle } from '../support/oracle.ts';
import { testRuntime, workerOptions } from '../runtime/runtime-harness.ts';

/**
 * A transaction left open in the application: rollups keep running and stay equal to the oracle
 * (which cannot see the open transaction's rows either); the health report's change-capture lag
 * grows with its age and names its session; once it commits, its rows are folded in — nothing lost.
 *
 * On a PostgreSQL server of its own: the lag is the cluster's oldest transaction, and on the shared
 * server another test run's could be older than ours, so the session named could not be asserted.
 */
const dataDir = mkdtempSync(join(tmpdir(), 'aggjobs-long-tx-'));
let server: EmbeddedDatabase | undefined;
let pool: TestDatabase['pool'] | undefined;

afterAll(async () => {
  await pool?.end().catch(() => undefined);
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const hourly = ['execution_metrics_hourly', 'user_activity_hourly', 'credit_consumption_hourly'];

interface Health {
  checks: {
    change_capture_lag: {
      status: string;
      data: { lagSeconds: number; pid: number | null; applicationName: string | null };
    };
  };
}

describe('a long-open transaction in the application', () => {
  it('lag grows and is reported; its rows are folded in when it commits', async () => {
    server = await startEmbeddedPostgres({ dataDir });
    pool = createPool({ connectionString: server.url, max: 8, applicationName: 'aggjobs test' });
    await prepareDatabase(pool, { analyticsTimezone: 'UTC' });
    const db: TestDatabase = { url: server.url, pool, name: 'postgres' };
    const runtime = await testRuntime('redis', db);
    const worker = await startWorker(runtime, workerOptions({ name: 'w-long-tx', queues: ['aggregation'] }));
    const app = createDashboardApp({
      pool: db.pool,
      settings: runtime.settings,
      runtime,
      logger: runtime.logger,
    });
    const health = async (): Promise<Health['checks']['change_capture_lag']> =>
      ((await (await app.request('/api/health?fresh=1')).json()) as Health).checks.change_capture_lag;
    const rollup = async (): Promise<void> => {
      await (await runtime.enqueue('hourly_rollup', {})).get({ timeout: 30 });
    };
    const insert = (workspace: number, n: number) =>
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       SELECT ${workspace}, i, 1, 'success', now() - interval '10 minutes', i * 10, 1 FROM generate_series(1, ${n}) i`;

    const app_ = new pg.Client({ connectionString: db.url, application_name: 'product long transaction' });
    await app_.connect();
    try {
      await db.pool.query(insert(1, 50));
      await rollup();

      await app_.query('BEGIN');
      await app_.query(insert(2, 40)); // same hour, another workspace: invisible until commit
      const { rows: pidRows } = await app_.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      // Committed writes around it keep flowing, and rollups keep running.
      for (let i = 0; i < 4; i += 1) {
        await db.pool.query(insert(3, 10));
        await rollup();
        await new Promise((r) => setTimeout(r, 1000));
      }
      const lagDuring = await health();
      // The oldest transaction of the cluster, which on this server of its own is ours.
      expect(lagDuring.data.pid).toBe(pidRows[0]?.pid);
      expect(lagDuring.data.applicationName).toBe('product long transaction');
      expect(lagDuring.data.lagSeconds).toBeGreaterThanOrEqual(4);
      // Degraded only past CHANGE_CAPTURE_LAG_DEGRADED_S (1 h); an age of seconds is reported as data.
      await assertRollupsMatchOracle(db.pool, 'UTC', { tables: hourly });
      const { rows: before } = await db.pool.query(
        'SELECT 1 FROM analytics.execution_metrics_hourly WHERE workspace_id = 2',
      );
      expect(before).toEqual([]);

      await app_.query('COMMIT');
      await rollup();
      await assertRollupsMatchOracle(db.pool, 'UTC', { tables: hourly });
      const { rows } = await db.pool.query<{ n: number }>(
        'SELECT sum(executions_total)::int AS n FROM analytics.execution_metrics_hourly WHERE workspace_id = 2',
      );
      expect(rows[0]?.n).toBe(40);
      const lagAfter = await health();
      expect(lagAfter.data.pid).not.toBe(pidRows[0]?.pid);
    } finally {
      await app_.end();
      await worker.close();
    }
  });
});
