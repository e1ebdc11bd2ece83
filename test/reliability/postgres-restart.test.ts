import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { createPool, startEmbeddedPostgres, type EmbeddedDatabase, type Pool } from '../../src/db/index.ts';
import { prepareLayout } from '../../src/db/embedded-layout.ts';
import { createLogger } from '../../src/log/index.ts';
import { prepareDatabase } from '../../src/rollups/index.ts';
import { createRuntime, startWorker, type Runtime } from '../../src/runtime/index.ts';
import { createDashboardApp } from '../../src/web/index.ts';
import { assertRollupsMatchOracle } from '../support/oracle.ts';
import { dropRedisNamespaces, eventually, testSettings, workerOptions } from '../runtime/runtime-harness.ts';

/**
 * A dedicated embedded PostgreSQL (never the shared one on 5432), restarted (pg_ctl stop -m fast,
 * then start on the same port and data directory) while an hourly rollup is inside its transaction.
 * The broker is the shared Redis under a unique prefix, so only the database goes away.
 */
const run = promisify(execFile);
const dataDir = mkdtempSync(join(tmpdir(), 'aggjobs-pg-restart-'));
let server: EmbeddedDatabase | undefined;
let pool: Pool | undefined;
let runtime: Runtime | undefined;
const namespace = `{p${randomBytes(4).toString('hex')}}`;

afterAll(async () => {
  // The server first: a failed test may leave the runtime waiting on it, and a hook that times out
  // must not leave the server running.
  await server?.stop();
  await runtime?.close();
  await pool?.end().catch(() => undefined);
  await dropRedisNamespaces([namespace]);
  rmSync(dataDir, { recursive: true, force: true });
});

async function pgCtl(args: string[]): Promise<void> {
  // Where the embedded server's binaries and data are, and as whom it runs: as root, copies of the
  // binaries outside the checkout when the `postgres` user cannot reach node_modules (a mode-700
  // checkout), and the data wherever it was laid out (embedded-layout.ts).
  const layout = await prepareLayout(dataDir, () => undefined);
  await run(layout.binaries.pg_ctl, [...args, '-D', layout.pgdata], {
    ...layout.user,
    env: { ...process.env, LC_ALL: 'C' },
  });
}

describe('PostgreSQL restarted during a rollup', () => {
  it('the run fails cleanly, is retried and succeeds; health is unhealthy meanwhile, healthy after', async () => {
    server = await startEmbeddedPostgres({ dataDir });
    pool = createPool({ connectionString: server.url, max: 6, applicationName: 'aggjobs test' });
    await prepareDatabase(pool, { analyticsTimezone: 'UTC' });
    await pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, completed_at, duration_ms, credits_used)
       SELECT 1 + i % 7, 1 + i % 31, 1 + i % 5, (ARRAY['success','failed','running'])[1 + i % 3],
              now() - make_interval(mins => i % 2000), now(), i % 900, (i % 4)::numeric
       FROM generate_series(1, 2000) i`,
    );
    await pool.query(
      `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id)
       SELECT 1 + i % 7, 1 + i % 31, 'view', now() - make_interval(mins => i % 2000), 's' || (i % 41)
       FROM generate_series(1, 2000) i`,
    );
    const settings = testSettings('redis', { TASK_MAX_RETRIES: '8', TASK_RETRY_BACKOFF_MS: '500' });
    runtime = await createRuntime({
      settings,
      pool,
      databaseUrl: server.url,
      logger: createLogger(settings.logLevel),
      namespace,
    });
    const app = createDashboardApp({ pool, settings, runtime, logger: runtime.logger });
    const health = async (): Promise<{ code: number; status: string; database?: string }> => {
      const res = await app.request('/api/health?fresh=1');
      const body = (await res.json()) as { status: string; checks?: { database?: { status: string } } };
      return { code: res.status, status: body.status, database: body.checks?.database?.status };
    };
    expect((await health()).database).toBe('healthy');

    // Hold the second rollup's table so the run waits inside its transaction (mid-rollup).
    const blocker = await pool.connect();
    // A checked-out client has no pool error listener: the restart's FATAL is expected here.
    blocker.on('error', () => undefined);
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE analytics.user_activity_hourly IN ACCESS EXCLUSIVE MODE');
    const worker = await startWorker(
      runtime,
      workerOptions({ name: 'w-pg-restart', queues: ['aggregation'] }),
    );
    try {
      const handle = await runtime.enqueue('hourly_rollup', {});
      await eventually(async () => {
        const { rows } = await pool!.query(
          `SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
          [`aggjobs run ${handle.id} #1`],
        );
        return rows.length > 0;
      }, 30_000);

      const port = server.port;
      await pgCtl(['stop', '--wait', '-m', 'fast']);
      blocker.release(true);
      const during = await health();
      expect(during).toMatchObject({ code: 503, status: 'unhealthy', database: 'unhealthy' });
      await new Promise((r) => setTimeout(r, 1500));
      const { pgdata, logFile } = await prepareLayout(dataDir, () => undefined);
      expect(readFileSync(join(pgdata, 'PG_VERSION'), 'utf8').trim().length).toBeGreaterThan(0);
      await pgCtl([
        'start',
        '--wait',
        '--timeout=60',
        '-l',
        logFile,
        '-o',
        `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200`,
      ]);

      const restarted = Date.now();
      const result = await handle.get({ timeout: 45 });
      expect(result).toMatchObject({ grain: 'hour' });
      const info = await handle.info();
      expect(info?.state).toBe('succeeded');
      expect(info?.attempts).toBeGreaterThanOrEqual(2);
      const after = await eventually(async () => {
        const h = await health();
        return h.database === 'healthy' ? h : undefined;
      }, 20_000);
      expect(after.code).toBe(200);
      console.log(
        JSON.stringify({ attempts: info?.attempts, succeededAfterRestartMs: Date.now() - restarted }),
      );
      const { rows } = await pool.query(
        "SELECT id, state FROM aggjobs.task_runs WHERE state IN ('running', 'queued', 'retrying')",
      );
      expect(rows).toEqual([]);
      await assertRollupsMatchOracle(pool, 'UTC', {
        tables: ['execution_metrics_hourly', 'user_activity_hourly', 'credit_consumption_hourly'],
      });
    } finally {
      await worker.close();
    }
  });
});
