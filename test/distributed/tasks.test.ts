import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { materializedViewNames, rollupWatermarkKey } from '../../src/rollups/index.ts';
import { materializedViewSql } from '../../src/rollups/materialized-views.ts';
import { compareWithOracle } from '../support/oracle.ts';
import { createCitusTestDatabase, type CitusTestDatabase } from './citus-database.ts';
import { cliEntry } from '../support/cli-command.ts';

// The scheduled tasks on Citus, as an operator runs them (`aggjobs run <task> --eager`): the hourly
// and daily rollups incrementally (per node), cleanup with the retention rules, then the rollups
// again; `aggjobs migrate --status`.

const run = promisify(execFile);
const ZONE = 'UTC';
const DAY = 86_400_000;

async function cli(args: string[], url: string): Promise<{ stdout: string; stderr: string; code: number }> {
  return run(process.execPath, [cliEntry, ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', DATABASE_URL: url, ANALYTICS_TIMEZONE: ZONE },
  })
    .then((r) => ({ ...r, code: 0 }))
    .catch((e: { stdout: string; stderr: string; code: number }) => ({
      stdout: e.stdout,
      stderr: e.stderr,
      code: e.code,
    }));
}

let db: CitusTestDatabase;
beforeAll(async () => {
  db = await createCitusTestDatabase();
  const migrated = await cli(['migrate'], db.url);
  expect(migrated.stderr).toBe('');
  expect(migrated.code).toBe(0);
});

/** Executions every 5 hours from `daysAgo` days ago to now, in workspaces 1–6. */
async function insertHistory(daysAgo: number): Promise<void> {
  await db.pool.query(
    `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
     SELECT 1 + g % 6, g % 4, g % 3, (ARRAY['success','failed','timeout'])[1 + g % 3],
            now() - $1::int * interval '1 day' + g * interval '5 hours', 10 * g, g * 0.5
     FROM generate_series(0, $1::int * 24 / 5) g`,
    [daysAgo],
  );
}

async function runTask(task: string, ...args: string[]): Promise<unknown> {
  const r = await cli(['run', task, '--eager', ...args.flatMap((a) => ['--arg', a])], db.url);
  expect(r.stderr, `${task}: ${r.stderr}`).not.toMatch(/error/i);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as unknown;
}

const tables = ['execution_metrics_hourly', 'execution_metrics_daily'];

describe('tasks on Citus', () => {
  it('hourly and daily rollups run per node, cleanup keeps the retention rules, and the rollups stay exact', async () => {
    await insertHistory(20);
    const hourly = JSON.stringify(await runTask('hourly_rollup'));
    // Per node: the result carries each worker's part.
    for (const port of db.ports.workerPorts) expect(hourly).toContain(`127.0.0.1:${port}`);
    await runTask('daily_rollup');
    expect(await compareWithOracle(db.pool, ZONE, { tables })).toEqual([]);

    await runTask('cleanup_old_data', 'retention_days=7');
    const { rows } = await db.pool.query<{ source_table: string; cutoff: Date }>(
      'SELECT source_table, cutoff FROM aggjobs.retention_watermarks',
    );
    const cutoff = (key: string): Date => {
      const found = rows.find((r) => r.source_table === key)?.cutoff;
      if (found === undefined) throw new Error(`no watermark for ${key}`);
      return found;
    };
    const source = cutoff('public.execution_logs');
    expect(Date.now() - source.getTime()).toBeGreaterThan(7 * DAY - 60_000);
    const { rows: old } = await db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM public.execution_logs WHERE started_at < $1',
      [source],
    );
    expect(old[0]?.n).toBe(0);

    // New rows, a late one, an update and a delete after the cleanup: the next runs fold them in
    // and leave the frozen buckets alone.
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       VALUES (2, 9, 1, 'failed', now() - interval '3 days', 77, 1.5), (5, 9, 1, 'success', now(), 5, 0.5)`,
    );
    await db.pool.query(
      `UPDATE public.execution_logs SET status = 'cancelled' WHERE workspace_id = 3
         AND id = (SELECT max(id) FROM public.execution_logs WHERE workspace_id = 3)`,
    );
    await db.pool.query(
      `DELETE FROM public.execution_logs WHERE workspace_id = 4
         AND id = (SELECT min(id) FROM public.execution_logs WHERE workspace_id = 4)`,
    );
    await runTask('hourly_rollup');
    await runTask('daily_rollup');
    const rollup = cutoff(rollupWatermarkKey('execution_metrics_hourly'));
    expect(
      await compareWithOracle(db.pool, ZONE, {
        tables,
        frozenBefore: {
          execution_metrics_hourly: source > rollup ? source : rollup,
          execution_metrics_daily: source,
        },
      }),
    ).toEqual([]);

    const status = await cli(['migrate', '--status'], db.url);
    expect(status.code).toBe(0);
  }, 240_000); // six CLI runs of ~14 s each under load; 60 s was missed twice at a load of 10-13

  it('health reports the change-capture lag per node', async () => {
    // A transaction left open on the first worker: its age shows as that node's lag.
    const [worker] = db.ports.workerPorts as [number];
    const open = new pg.Client({
      connectionString: db.url.replace(`:${db.ports.coordinatorPort}/`, `:${worker}/`),
    });
    await open.connect();
    await open.query('BEGIN');
    const { rows } = await open.query<{ pid: number }>(
      'SELECT pg_backend_pid() AS pid, pg_current_xact_id()',
    );
    // Held 3 s before the check: the node's lag is at least that. (The node is not this test's
    // alone: a transaction of another backend may be older still — an autovacuum after the last
    // test's writes, Citus's own — and be the one named: twice in CI.)
    await new Promise((resolve) => setTimeout(resolve, 3000));
    // An eager run prints { runId, result }: the result is the health report.
    const { result: report } = (await runTask('health_check')) as {
      result: {
        checks: {
          change_capture_lag: {
            status: string;
            data: { nodes: Array<{ node: string; lagSeconds: number; pid: number | null }> };
          };
        };
      };
    };
    const lag = report.checks.change_capture_lag;
    expect(lag.data.nodes.map((n) => n.node).sort()).toEqual(
      db.ports.workerPorts.map((p) => `127.0.0.1:${p}`).sort(),
    );
    expect(lag.data.nodes.every((n) => typeof n.lagSeconds === 'number')).toBe(true);
    const held = lag.data.nodes.find((n) => n.node === `127.0.0.1:${worker}`);
    expect(held?.lagSeconds).toBeGreaterThanOrEqual(3);
    expect(held?.pid).toEqual(expect.any(Number));
    // The named transaction is this one, or one that began before it.
    const { rows: named } = await open.query<{ older: boolean | null }>(
      `SELECT (SELECT xact_start FROM pg_stat_activity WHERE pid = $1) <= xact_start AS older
       FROM pg_stat_activity WHERE pid = pg_backend_pid()`,
      [held?.pid],
    );
    if (held?.pid !== rows[0]?.pid) expect(named[0]?.older).not.toBe(false);
    await open.query('ROLLBACK');
    await open.end();
  });

  it('refresh_materialized_views keeps the three views equal to their queries after a write', async () => {
    await runTask('refresh_materialized_views');
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       VALUES (6, 42, 1, 'success', now() - interval '1 hour', 1234, 2.5)`,
    );
    await runTask('refresh_materialized_views');
    // Each view (on Citus: views over the view rollups and a coordinator table, citus-views.ts)
    // against its single-server defining query run now: no row on either side only.
    const views = materializedViewNames.map((name) => ({ name, query: materializedViewSql(name, ZONE) }));
    expect(views).toHaveLength(3);
    for (const v of views) {
      const { rows } = await db.pool.query<{ differing: number }>(
        `SELECT count(*)::int AS differing FROM (
           (SELECT * FROM analytics.${v.name} EXCEPT ALL (${v.query}))
           UNION ALL
           ((${v.query}) EXCEPT ALL SELECT * FROM analytics.${v.name})) d`,
      );
      expect({ view: v.name, differing: rows[0]?.differing }).toEqual({ view: v.name, differing: 0 });
    }
  });
});
