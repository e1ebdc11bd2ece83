import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { createSecretScrubber } from '../../src/config/index.ts';
import { startWorker } from '../../src/runtime/index.ts';
import { builtinRollups, materializedViewNames } from '../../src/rollups/index.ts';
import type { DashboardContext } from '../../src/web/dashboard-context.ts';
import { rollupsPage } from '../../src/web/pages/index.ts';
import { rollupSeries, rollupStatuses, viewStatuses } from '../../src/web/queries/index.ts';
import { testRuntime, workerOptions } from '../runtime/runtime-harness.ts';
import { compareWithOracle } from '../support/oracle.ts';
import { createCitusTestDatabase, type CitusTestDatabase } from './citus-database.ts';
import { apply } from './citus-ops.ts';
import { cliEntry } from '../support/cli-command.ts';
import { windowDaysByRows } from '../../src/tasks/index.ts';

// More tasks on Citus, as an operator runs them (`aggjobs run <task> --eager`, `aggjobs rollups
// rebuild`, a backfill over the broker with two workers), each checked against the oracle (a plain
// GROUP BY over the source rows): the weekly and monthly rollups, the backfill, the rebuild, a
// refresh stopped by its soft time limit, a shard moved during a refresh; and what reads the nodes'
// state: the health check's freshness per node, the dashboard's rollup page.
// America/New_York: weeks and months are the zone's. The 70 days of history hold a DST change only
// in some seasons (run in December 2026 they hold the 25-hour day of 2026-11-01);
// incremental-refresh.test.ts covers that day on fixed dates.

const run = promisify(execFile);
const ZONE = 'America/New_York';

interface CliResult {
  stdout: string;
  stderr: string;
  code: number;
}

async function cli(args: string[], url: string, env: Record<string, string> = {}): Promise<CliResult> {
  return run(process.execPath, [cliEntry, ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', DATABASE_URL: url, ANALYTICS_TIMEZONE: ZONE, ...env },
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
  // Executions every 3 hours over 70 days, activity events and credit transactions every 7 hours,
  // in workspaces 1–6 (spread over both workers' shards).
  await db.pool.query(
    `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
     SELECT 1 + g % 6, g % 5, g % 3, (ARRAY['success','failed','timeout','running'])[1 + g % 4],
            now() - interval '70 days' + g * interval '3 hours', 10 * g % 977, (g % 9) * 0.5
     FROM generate_series(0, 70 * 8) g`,
  );
  await db.pool.query(
    `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, session_id, occurred_at)
     SELECT 1 + g % 6, g % 4, (ARRAY['view','click'])[1 + g % 2], 'session-' || (g % 7),
            now() - interval '70 days' + g * interval '7 hours'
     FROM generate_series(0, 240) g`,
  );
  await db.pool.query(
    `INSERT INTO public.credit_transactions (workspace_id, user_id, credits, source, created_at)
     SELECT 1 + g % 6, g % 4, 1 + g % 5, (ARRAY['workflow','api'])[1 + g % 2],
            now() - interval '70 days' + g * interval '7 hours'
     FROM generate_series(0, 240) g`,
  );
});

async function runTask(task: string, ...args: string[]): Promise<unknown> {
  const r = await cli(['run', task, '--eager', ...args.flatMap((a) => ['--arg', a])], db.url);
  expect(r.stderr, `${task}: ${r.stderr}`).not.toMatch(/error/i);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as unknown;
}

/** The time of the first or last row of a workspace, shifted by `ms`. */
async function shifted(
  table: string,
  column: string,
  workspace: number,
  pick: 'min' | 'max',
  ms: number,
): Promise<Date> {
  const { rows } = await db.pool.query<{ at: Date }>(
    `SELECT ${column} AS at FROM public.${table}
     WHERE workspace_id = $1 AND id = (SELECT ${pick}(id) FROM public.${table} WHERE workspace_id = $1)`,
    [workspace],
  );
  const at = rows[0]?.at;
  if (at === undefined) throw new Error(`no row of workspace ${workspace} in ${table}`);
  return new Date(at.getTime() + ms);
}

/** Late, updated (across buckets, weeks and workspaces) and deleted rows, on both workers. */
async function writeMore(): Promise<void> {
  await db.pool.query(
    `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
     VALUES (2, 9, 1, 'failed', now() - interval '40 days', 77, 1.5), (5, 9, 2, 'success', now(), 5, 0.5),
            (3, 8, 1, 'timeout', now() - interval '60 days', 900, 2)`,
  );
  // A row moved 10 days back (another week, maybe another month), one moved to another workspace.
  // (Citus refuses a STABLE function of a column in an UPDATE: the new times are computed first.)
  await db.pool.query(
    `UPDATE public.execution_logs SET started_at = $1, status = 'cancelled'
     WHERE workspace_id = 1 AND id = (SELECT max(id) FROM public.execution_logs WHERE workspace_id = 1)`,
    [await shifted('execution_logs', 'started_at', 1, 'max', -10 * 86_400_000)],
  );
  // A row moved to another workspace (another shard, maybe another node): a delete and an insert.
  const { rows: ws4 } = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM public.execution_logs WHERE id < (SELECT min(id) + 7 FROM public.execution_logs WHERE workspace_id = 4)`,
  );
  await apply(db.pool, { op: 'moveWorkspace', table: 'execution_logs', pick: ws4[0]?.n ?? 0, ws: 6 });
  await db.pool.query(
    `DELETE FROM public.execution_logs WHERE workspace_id = 3
       AND id = (SELECT min(id) FROM public.execution_logs WHERE workspace_id = 3)`,
  );
  await db.pool.query(
    `UPDATE public.user_activity_events SET occurred_at = $1
     WHERE workspace_id = 2 AND id = (SELECT max(id) FROM public.user_activity_events WHERE workspace_id = 2)`,
    [await shifted('user_activity_events', 'occurred_at', 2, 'max', -2 * 86_400_000)],
  );
  await db.pool.query(
    `DELETE FROM public.credit_transactions WHERE workspace_id = 5
       AND id = (SELECT min(id) FROM public.credit_transactions WHERE workspace_id = 5)`,
  );
}

/** A client on one node of the cluster (the test database there). */
async function onNode(port: number): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: db.url.replace(`:${db.ports.coordinatorPort}/`, `:${port}/`),
  });
  await client.connect();
  return client;
}

/** A rollup's rows, the coordinator's rollup state and each worker's node states, as JSON. */
async function snapshot(table: string): Promise<unknown> {
  const { rows } = await db.pool.query(
    `SELECT (SELECT json_agg(r ORDER BY r.bucket_start, r.workspace_id) FROM analytics.${table} r) AS rows,
            (SELECT json_agg(s ORDER BY s.rollup) FROM aggjobs.rollup_state s) AS state`,
  );
  const nodes = [];
  for (const port of db.ports.workerPorts) {
    const c = await onNode(port);
    const { rows: states } = await c.query(
      'SELECT rollup, snapshot::text, horizon::text, placements::text, refreshed_at FROM aggjobs_node.rollup_state ORDER BY rollup',
    );
    nodes.push(states);
    await c.end();
  }
  return { ...rows[0], nodes };
}

/** Executions per bucket of `grain`, of all workspaces ($2 null) or one: the charts' oracle. */
function executionsOracle(grain: string): string {
  return `SELECT date_trunc('${grain}', started_at, $1) AS bucket, count(*)::float8 AS value
          FROM public.execution_logs WHERE ($2::bigint IS NULL OR workspace_id = $2) GROUP BY 1`;
}

const allGrains = ['hourly_rollup', 'daily_rollup', 'weekly_rollup', 'monthly_rollup'];

// Each test runs several CLI processes on a shared two-core machine: more time than the default (the
// hard-time-limit case took 87-178 s at load 9-12).
describe('more tasks on Citus', { timeout: 300_000 }, () => {
  it('weekly and monthly rollups run per node and stay exact after late, moved and deleted rows', async () => {
    const weekly = (await runTask('weekly_rollup')) as { result: { rollups: Array<{ nodes?: unknown[] }> } };
    // Per node: the incremental run on a distributed source reports each worker's part.
    expect(weekly.result.rollups[0]?.nodes).toHaveLength(db.ports.workerPorts.length);
    await runTask('monthly_rollup');
    const tables = ['execution_metrics_weekly', 'execution_metrics_monthly'];
    expect(await compareWithOracle(db.pool, ZONE, { tables })).toEqual([]);

    await writeMore();
    const again = JSON.stringify(await runTask('weekly_rollup'));
    for (const port of db.ports.workerPorts) expect(again).toContain(`127.0.0.1:${port}`);
    await runTask('monthly_rollup');
    expect(await compareWithOracle(db.pool, ZONE, { tables })).toEqual([]);

    // A window run of one week (through the coordinator), its rows damaged first.
    const { rows } = await db.pool.query<{ week: string }>(
      `SELECT to_char(date_trunc('week', now() - interval '21 days', $1), 'YYYY-MM-DD') AS week`,
      [ZONE],
    );
    const week = rows[0]?.week ?? '';
    await db.pool.query(
      `UPDATE analytics.execution_metrics_weekly SET executions_total = executions_total + 5
       WHERE bucket_start = ($1::date::timestamp AT TIME ZONE $2)`,
      [week, ZONE],
    );
    expect(await compareWithOracle(db.pool, ZONE, { tables })).not.toEqual([]);
    const windowed = (await runTask('weekly_rollup', `target_week=${week}`)) as { result: { mode: string } };
    expect(windowed.result.mode).toBe('window');
    expect(await compareWithOracle(db.pool, ZONE, { tables })).toEqual([]);
  });

  it('backfill_aggregations recomputes a damaged range, window by window, exactly', async () => {
    for (const task of ['hourly_rollup', 'daily_rollup']) await runTask(task);
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
    // Rows deleted and damaged in 5 days of the daily and hourly rollups, on both workers' shards.
    const { rows } = await db.pool.query<{ start: string; end: string; from: Date; to: Date }>(
      `SELECT to_char(d, 'YYYY-MM-DD') AS start, to_char(d + 5, 'YYYY-MM-DD') AS end,
              d::timestamp AT TIME ZONE $1 AS from, (d + 5)::timestamp AT TIME ZONE $1 AS to
       FROM (SELECT (now() AT TIME ZONE $1)::date - 30 AS d) x`,
      [ZONE],
    );
    const range = rows[0];
    if (range === undefined) throw new Error('no range');
    for (const table of ['execution_metrics_daily', 'user_activity_daily', 'credit_consumption_daily']) {
      await db.pool.query(
        `DELETE FROM analytics.${table} WHERE bucket_start >= $1 AND bucket_start < $2 AND workspace_id % 2 = 0`,
        [range.from, range.to],
      );
    }
    await db.pool.query(
      `UPDATE analytics.execution_metrics_daily SET executions_total = executions_total * 3
       WHERE bucket_start >= $1 AND bucket_start < $2`,
      [range.from, range.to],
    );
    await db.pool.query(
      `DELETE FROM analytics.execution_metrics_hourly WHERE bucket_start >= $1 AND bucket_start < $2`,
      [range.from, range.to],
    );
    const damaged = await compareWithOracle(db.pool, ZONE);
    expect(damaged.map((m) => m.table).sort()).toEqual([
      'credit_consumption_daily',
      'execution_metrics_daily',
      'execution_metrics_hourly',
      'user_activity_daily',
    ]);

    for (const granularity of ['daily', 'hourly']) {
      const done = (await runTask(
        'backfill_aggregations',
        `start_date=${range.start}`,
        `end_date=${range.end}`,
        `granularity=${granularity}`,
      )) as { runId: string; result: { status: string; total: number; done: number; failed: number } };
      expect(done.result).toMatchObject({ status: 'completed', failed: 0 });
      expect(done.result.done).toBe(done.result.total);
      expect(done.result.total).toBeGreaterThan(0);
      // Distributed sources keep the fixed cut (24 hours a window; 6 when the range holds the
      // 25-hour day): the coordinator cannot estimate rows.
      const hours = (range.to.getTime() - range.from.getTime()) / 3_600_000;
      if (granularity === 'hourly') expect(done.result.total).toBe(Math.ceil(hours / 24));
      // Its windows ran as child runs, each succeeded.
      const { rows: children } = await db.pool.query<{ state: string; n: number }>(
        `SELECT state, count(*)::int AS n FROM aggjobs.task_runs WHERE parent_id = $1 GROUP BY state`,
        [done.runId],
      );
      expect(children).toEqual([{ state: 'succeeded', n: done.result.total }]);
    }
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
    const args = { start_date: range.start, end_date: range.end, granularity: 'hourly' as const };
    expect(await windowDaysByRows(db.pool, 'hour', args, ZONE)).toBeUndefined();

    // The incremental runs after a backfill stay exact.
    await writeMore();
    for (const task of allGrains) await runTask(task);
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
  });

  it('aggjobs rollups rebuild recomputes a damaged rollup, and a recreated table stays distributed', async () => {
    const table = 'execution_metrics_daily';
    await db.pool.query(`DELETE FROM analytics.${table} WHERE workspace_id % 2 = 0`);
    await db.pool.query(`UPDATE analytics.${table} SET executions_total = executions_total + 7`);
    const rebuilt = await cli(['rollups', 'rebuild', '--rollup', table], db.url);
    expect(rebuilt.code, rebuilt.stderr).toBe(0);
    const [result] = JSON.parse(rebuilt.stdout) as Array<{
      rollup: string;
      sourceRows: number;
      rowsWritten: number;
    }>;
    expect(result?.rollup).toBe(table);
    const { rows: n } = await db.pool.query<{ source: number; rollup: number }>(
      `SELECT (SELECT count(*)::int FROM public.execution_logs) AS source,
              (SELECT count(*)::int FROM analytics.${table}) AS rollup`,
    );
    expect(result?.sourceRows).toBe(n[0]?.source);
    expect(result?.rowsWritten).toBe(n[0]?.rollup);
    expect(await compareWithOracle(db.pool, ZONE, { tables: [table] })).toEqual([]);
    // The per-node incremental runs continue from it.
    await writeMore();
    await runTask('daily_rollup');
    expect(await compareWithOracle(db.pool, ZONE, { tables: [table] })).toEqual([]);

    // A table whose columns no longer match the definition is created again: on Citus it must be
    // distributed and co-located again, or the per-node refresh would find no shard of it.
    await db.pool.query(`ALTER TABLE analytics.${table} ADD COLUMN stray integer`);
    const recreated = await cli(['rollups', 'rebuild', '--rollup', table], db.url);
    expect(recreated.code, recreated.stderr).toBe(0);
    expect(recreated.stderr).toMatch(/created again/);
    const { rows: placed } = await db.pool.query<{ same: boolean; column: string }>(
      `SELECT t.colocationid = s.colocationid AS same, column_to_column_name(t.logicalrelid, t.partkey) AS column
       FROM pg_dist_partition t, pg_dist_partition s
       WHERE t.logicalrelid = $1::regclass AND s.logicalrelid = 'public.execution_logs'::regclass`,
      [`analytics.${table}`],
    );
    expect(placed).toEqual([{ same: true, column: 'workspace_id' }]);
    expect(await compareWithOracle(db.pool, ZONE, { tables: [table] })).toEqual([]);
    await writeMore();
    const after = (await runTask('daily_rollup')) as {
      result: {
        rollups: Array<{ rollup: string; nodes?: Array<{ shards: number; shardsRecomputed: number }> }>;
      };
    };
    const nodes = after.result.rollups.find((r) => r.rollup === table)?.nodes ?? [];
    expect(nodes).toHaveLength(db.ports.workerPorts.length);
    // New shards (new placement ids): each node recomputes them whole.
    for (const node of nodes) expect(node.shardsRecomputed).toBe(node.shards);
    expect(await compareWithOracle(db.pool, ZONE, { tables: [table] })).toEqual([]);
  });

  it('a refresh stopped by its soft time limit writes nothing on any node, and the next run is exact', async () => {
    const table = 'execution_metrics_hourly';
    for (const task of allGrains) await runTask(task);
    // Changes on both workers, not folded in yet.
    await writeMore();
    const before = await snapshot(table);

    // The second worker's refresh waits for a lock on its state; the first does its work and waits
    // for the others to commit. The soft limit (5 s: time for the first worker's part on a loaded
    // machine) stops the run meanwhile.
    const [first, second] = db.ports.workerPorts as [number, number];
    const holder = await onNode(second);
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE aggjobs_node.rollup_state IN SHARE ROW EXCLUSIVE MODE');
    const watcherA = await onNode(first);
    const watcherB = await onNode(second);
    let sawFirstDone = false;
    let sawSecondWaiting = false;
    const running = cli(['run', 'hourly_rollup', '--eager'], db.url, {
      TASK_TIME_LIMITS: 'hourly_rollup=600:5',
      ROLLUP_LOCK_TIMEOUT_MS: '120000',
    });
    let settled = false;
    void running.finally(() => (settled = true));
    while (!settled) {
      const a = await watcherA.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND state = 'idle in transaction' AND backend_xid IS NOT NULL`,
      );
      const b = await watcherB.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> $1`,
        [(await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid],
      );
      if ((a.rows[0]?.n ?? 0) > 0) sawFirstDone = true;
      if ((b.rows[0]?.n ?? 0) > 0) sawSecondWaiting = true;
      await new Promise((r) => setTimeout(r, 100));
    }
    const stopped = await running;
    expect(stopped.code).not.toBe(0);
    expect(`${stopped.stdout}${stopped.stderr}`).toMatch(/aborted: nothing was written/);
    expect(sawFirstDone).toBe(true);
    expect(sawSecondWaiting).toBe(true);
    const { rows: runs } = await db.pool.query<{ state: string; error: string }>(
      `SELECT state, error FROM aggjobs.task_runs WHERE task = 'hourly_rollup' ORDER BY enqueued_at DESC LIMIT 1`,
    );
    expect(runs[0]?.state).toBe('timed_out');

    // The first worker rolled back when its connection closed; the second once the lock is gone
    // (it finds its client gone). Nothing of the run is left on any node, nor on the coordinator.
    await holder.query('ROLLBACK');
    await holder.end();
    for (let i = 0; i < 100; i++) {
      const { rows } = await watcherB.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()`,
      );
      if (rows[0]?.n === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await watcherA.end();
    await watcherB.end();
    expect(await snapshot(table)).toEqual(before);
    expect(await compareWithOracle(db.pool, ZONE, { tables: [table] })).not.toEqual([]);

    await runTask('hourly_rollup');
    expect(await compareWithOracle(db.pool, ZONE)).not.toEqual([]); // daily and coarser not run yet
    for (const task of allGrains.slice(1)) await runTask(task);
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
  });
  it("health: data freshness reports each node's own last refresh, degraded naming the node, unhealthy when one cannot be reached", async () => {
    for (const task of allGrains) await runTask(task);
    type Freshness = {
      status: string;
      detail: string;
      data: {
        lagSeconds: Record<string, number | null>;
        nodes: Array<{ node: string; lagSeconds: Record<string, number | null>; error?: string }>;
      };
    };
    const freshness = async (): Promise<Freshness> => {
      const { result } = (await runTask('health_check')) as {
        result: { checks: { data_freshness: Freshness } };
      };
      return result.checks.data_freshness;
    };
    const [first, second] = db.ports.workerPorts as [number, number];
    const nameOf = (port: number): string => `127.0.0.1:${port}`;
    const rollups = builtinRollups.map((r) => r.name).sort();

    const fresh = await freshness();
    expect(fresh.status).toBe('healthy');
    expect(fresh.data.nodes.map((n) => n.node).sort()).toEqual([nameOf(first), nameOf(second)].sort());
    for (const n of fresh.data.nodes) {
      expect(Object.keys(n.lagSeconds).sort()).toEqual(rollups);
      for (const lag of Object.values(n.lagSeconds)) expect(lag).toBeLessThan(600);
    }

    // One node's daily rollup last refreshed 3 days ago (its limit is 2 days), the other node's
    // hourly activity rollup 5 hours ago (limit 2 hours): the coordinator's times show neither. A
    // node without a state of its own for a rollup (as after only window refreshes) counts by the
    // coordinator's time: not stale.
    const a = await onNode(first);
    await a.query(
      `UPDATE aggjobs_node.rollup_state SET refreshed_at = now() - interval '3 days' WHERE rollup = 'execution_metrics_daily'`,
    );
    await a.query(`DELETE FROM aggjobs_node.rollup_state WHERE rollup = 'credit_consumption_daily'`);
    await a.end();
    const b = await onNode(second);
    await b.query(
      `UPDATE aggjobs_node.rollup_state SET refreshed_at = now() - interval '5 hours' WHERE rollup = 'user_activity_hourly'`,
    );
    const late = await freshness();
    expect(late.status).toBe('degraded');
    expect(late.detail).toContain(`execution_metrics_daily on Citus node ${nameOf(first)}`);
    expect(late.detail).toContain(`user_activity_hourly on Citus node ${nameOf(second)}`);
    expect(late.detail).not.toContain(`execution_metrics_daily on Citus node ${nameOf(second)}`);
    expect(late.detail).not.toContain(`user_activity_hourly on Citus node ${nameOf(first)}`);
    expect(late.detail).not.toContain('credit_consumption_daily');
    expect(late.data.lagSeconds.execution_metrics_daily).toBeLessThan(600);
    expect(late.data.lagSeconds.user_activity_hourly).toBeLessThan(600);
    const lagOn = (f: Freshness, port: number) =>
      f.data.nodes.find((n) => n.node === nameOf(port))?.lagSeconds;
    expect(lagOn(late, first)?.execution_metrics_daily).toBeGreaterThanOrEqual(3 * 86_400 - 60);
    expect(lagOn(late, second)?.user_activity_hourly).toBeGreaterThanOrEqual(5 * 3600 - 60);
    expect(lagOn(late, first)?.credit_consumption_daily).toBeNull();

    // A node without the aggjobs_node schema's state table (as a worker added after migrate):
    // unhealthy, naming it and the fix.
    await b.query('SET citus.enable_ddl_propagation = off');
    await b.query('ALTER TABLE aggjobs_node.rollup_state RENAME TO rollup_state_away');
    let bare: Freshness;
    try {
      bare = await freshness();
    } finally {
      await b.query('ALTER TABLE aggjobs_node.rollup_state_away RENAME TO rollup_state');
    }
    expect(bare.status).toBe('unhealthy');
    expect(bare.detail).toContain(`Citus node ${nameOf(second)} lacks aggjobs' node objects`);
    expect(bare.detail).toContain('run aggjobs migrate again');

    await b.end();
    // A node that refuses connections to the database: unhealthy, naming it. (Set from another
    // database of that node, with Citus's propagation off: only this worker refuses.)
    const admin = new pg.Client({
      connectionString: db.url
        .replace(`:${db.ports.coordinatorPort}/`, `:${second}/`)
        .replace(`/${db.name}`, '/postgres'),
    });
    await admin.connect();
    await admin.query('SET citus.enable_ddl_propagation = off').catch(() => undefined);
    await admin.query(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS false`);
    let down: Freshness;
    try {
      down = await freshness();
    } finally {
      await admin.query(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`);
      await admin.end();
    }
    expect(down.status).toBe('unhealthy');
    expect(down.detail).toContain(`Citus worker node ${nameOf(second)} is unreachable`);
    // A health check writes nothing: the refresh's "nothing was written" is not said.
    expect(down.detail).not.toContain('nothing was written');

    // The next runs bring every node up to date (the node without a state recomputes its shards).
    for (const task of allGrains) await runTask(task);
    expect((await freshness()).status).toBe('healthy');
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
  });
  it("the dashboard's rollup page and API read the rollups' rows on the cluster", async () => {
    for (const task of allGrains) await runTask(task);
    await runTask('refresh_materialized_views');

    // The table of rollups: each refreshed per node just now, none needing a rebuild.
    const statuses = await rollupStatuses(db.pool, builtinRollups, ZONE);
    expect(statuses.map((s) => s.table).sort()).toEqual(builtinRollups.map((r) => r.name).sort());
    for (const s of statuses) {
      expect(s.horizonAt, s.table).not.toBeNull();
      expect(s.lagSeconds, s.table).toBeLessThan(600);
      expect(s.rebuild, s.table).toBeNull();
      const nodes = (s.lastResult as { nodes?: Array<{ node: string }> }).nodes ?? [];
      expect(nodes.map((n) => n.node).sort(), s.table).toEqual(
        db.ports.workerPorts.map((p) => `127.0.0.1:${p}`).sort(),
      );
    }
    // Rows (est.): the statistics' live rows of the table's shards, on the workers (the coordinator's
    // table holds none). Statistics are flushed shortly after a write: within half and twice the count.
    const counts = new Map<string, number>();
    for (const def of builtinRollups) {
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM analytics.${def.name}`,
      );
      counts.set(def.name, rows[0]?.n ?? 0);
    }
    const estimatesClose = (list: typeof statuses): boolean =>
      list.every((s) => {
        const n = counts.get(s.table) ?? 0;
        return s.rowsEstimate !== null && s.rowsEstimate >= n / 2 && s.rowsEstimate <= n * 2;
      });
    let estimated = statuses;
    for (let i = 0; i < 100 && !estimatesClose(estimated); i++) {
      await new Promise((r) => setTimeout(r, 200));
      estimated = await rollupStatuses(db.pool, builtinRollups, ZONE);
    }
    expect(
      estimated.map((s) => ({ table: s.table, rows: counts.get(s.table), estimate: s.rowsEstimate })),
    ).toSatisfy(() => estimatesClose(estimated));
    const views = await viewStatuses(db.pool, materializedViewNames);
    expect(views).toHaveLength(3);
    for (const v of views) expect(v.refreshedAt, v.view).not.toBeNull();

    // The charts' series (the additive measures summed per bucket) against a GROUP BY of the
    // source rows, over all workspaces and over one.
    const from = new Date(Date.now() - 40 * 86_400_000);
    const to = new Date(Date.now() + 60_000);
    const oracle: Record<string, { grain: string; sql: string; measure: string }> = {
      execution_metrics_hourly: { grain: 'hour', measure: 'executions_total', sql: executionsOracle('hour') },
      execution_metrics_daily: { grain: 'day', measure: 'executions_total', sql: executionsOracle('day') },
      execution_metrics_weekly: { grain: 'week', measure: 'executions_total', sql: executionsOracle('week') },
      execution_metrics_monthly: {
        grain: 'month',
        measure: 'executions_total',
        sql: executionsOracle('month'),
      },
      user_activity_daily: {
        grain: 'day',
        measure: 'events_total',
        sql: `SELECT date_trunc('day', occurred_at, $1) AS bucket, count(*)::float8 AS value
              FROM public.user_activity_events WHERE ($2::bigint IS NULL OR workspace_id = $2) GROUP BY 1`,
      },
      credit_consumption_hourly: {
        grain: 'hour',
        measure: 'credits_consumed',
        sql: `SELECT date_trunc('hour', created_at, $1) AS bucket, sum(credits)::float8 AS value
              FROM public.credit_transactions WHERE ($2::bigint IS NULL OR workspace_id = $2) GROUP BY 1`,
      },
    };
    for (const [table, o] of Object.entries(oracle)) {
      const def = builtinRollups.find((r) => r.name === table);
      if (def === undefined) throw new Error(`no rollup ${table}`);
      for (const workspaceId of [undefined, 3]) {
        const series = await rollupSeries(db.pool, def, { from, to, workspaceId });
        const { rows } = await db.pool.query<{ bucket: Date; value: number }>(
          `SELECT bucket, value FROM (${o.sql}) x WHERE bucket >= $3 AND bucket < $4 ORDER BY bucket`,
          [ZONE, workspaceId ?? null, from, to],
        );
        expect(rows.length, table).toBeGreaterThan(0);
        expect(
          series.map((p) => ({ bucket: p.bucket.toISOString(), value: p.values[o.measure] })),
          `${table} workspace ${workspaceId ?? 'all'}`,
        ).toEqual(rows.map((r) => ({ bucket: r.bucket.toISOString(), value: r.value })));
      }
    }

    // The page itself, rendered from those reads: every table charted, no read failed.
    const page = await rollupsPage(
      {
        pool: db.pool,
        rollups: builtinRollups,
        views: materializedViewNames,
        settings: { analyticsTimezone: ZONE },
        scrub: createSecretScrubber({ urls: [db.url] }),
      } as unknown as DashboardContext,
      { query: {}, canWrite: false },
    );
    const html = String(page.live);
    for (const def of builtinRollups) expect(html).toContain(`data-rollup="${def.name}"`);
    expect(html).not.toMatch(/Not read/);
  });
  it('a backfill over the broker: its windows run in parallel on two workers, and the rollups equal the oracle', async () => {
    // The PostgreSQL broker (no REDIS_URL): BullMQ's tables in a schema of their own, local on the
    // coordinator. Two workers of two slots each.
    for (const task of allGrains) await runTask(task);
    const runtime = await testRuntime('postgres', db, { env: { ANALYTICS_TIMEZONE: ZONE } });
    const workers = await Promise.all(
      ['a', 'b'].map((n) => startWorker(runtime, workerOptions({ name: `citus-${n}`, concurrency: 2 }))),
    );
    try {
      const { rows } = await db.pool.query<{ start: string; end: string; from: Date; to: Date }>(
        `SELECT to_char(d, 'YYYY-MM-DD') AS start, to_char(d + 4, 'YYYY-MM-DD') AS end,
                d::timestamp AT TIME ZONE $1 AS from, (d + 4)::timestamp AT TIME ZONE $1 AS to
         FROM (SELECT (now() AT TIME ZONE $1)::date - 12 AS d) x`,
        [ZONE],
      );
      const range = rows[0];
      if (range === undefined) throw new Error('no range');
      for (const table of ['execution_metrics_hourly', 'user_activity_hourly', 'credit_consumption_hourly']) {
        await db.pool.query(`DELETE FROM analytics.${table} WHERE bucket_start >= $1 AND bucket_start < $2`, [
          range.from,
          range.to,
        ]);
      }
      expect(await compareWithOracle(db.pool, ZONE)).not.toEqual([]);
      const handle = await runtime.enqueue('backfill_aggregations', {
        kwargs: { start_date: range.start, end_date: range.end, granularity: 'hourly' },
      });
      const result = (await handle.get({ timeout: 120 }).catch(async (error: unknown) => {
        const { rows: failed } = await db.pool.query<{ error: string }>(
          'SELECT DISTINCT error FROM aggjobs.backfill_windows WHERE error IS NOT NULL',
        );
        throw new Error(`${String(error)}: ${failed.map((f) => f.error).join('; ')}`);
      })) as Record<string, unknown>;
      expect(result).toMatchObject({ status: 'completed', total: 4, done: 4, failed: 0 });
      const { rows: children } = await db.pool.query<{ state: string; started_at: Date; finished_at: Date }>(
        'SELECT state, started_at, finished_at FROM aggjobs.task_runs WHERE parent_id = $1',
        [handle.id],
      );
      expect(children.map((c) => c.state)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
      // In parallel: some two windows' runs overlap in time.
      const overlap = children.some((a, i) =>
        children.some((b, j) => i !== j && a.started_at < b.finished_at && b.started_at < a.finished_at),
      );
      expect(overlap).toBe(true);
      expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
    } finally {
      await Promise.all(workers.map((w) => w.close()));
    }
  });
  it('a shard moved while a refresh is under way: the refresh ends cleanly and the next run is exact', async () => {
    const table = 'execution_metrics_hourly';
    for (const task of allGrains) await runTask(task);
    await writeMore();
    const [first, second] = db.ports.workerPorts as [number, number];
    // A workspace whose shard is on the second worker: it moves to the first.
    const { rows: shards } = await db.pool.query<{ ws: number; shardid: string }>(
      `SELECT ws, get_shard_id_for_distribution_column('public.execution_logs', ws)::text AS shardid
       FROM generate_series(1, 6) ws
       WHERE (SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)
              WHERE p.shardid = get_shard_id_for_distribution_column('public.execution_logs', ws)) = $1
       ORDER BY ws LIMIT 1`,
      [second],
    );
    const moving = shards[0];
    if (moving === undefined) throw new Error(`no workspace on 127.0.0.1:${second}`);
    // Changes on the moving shard that no refresh folded in yet (a delete is logged on its old node).
    await db.pool.query(
      `DELETE FROM public.execution_logs WHERE workspace_id = $1
         AND id = (SELECT min(id) FROM public.execution_logs WHERE workspace_id = $1)`,
      [moving.ws],
    );

    // The refresh: the first worker does its work and waits to commit; the second waits on a lock on
    // its state that the test holds, its shard pairs computed, its transaction open.
    const holder = await onNode(second);
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE aggjobs_node.rollup_state IN SHARE ROW EXCLUSIVE MODE');
    const watcher = await onNode(second);
    const refreshing = cli(['run', 'hourly_rollup', '--eager'], db.url, { ROLLUP_LOCK_TIMEOUT_MS: '120000' });
    for (let i = 0; ; i++) {
      const { rows } = await watcher.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
      );
      if ((rows[0]?.n ?? 0) > 0) break;
      if (i > 300) throw new Error('the refresh never reached the held lock');
      await new Promise((r) => setTimeout(r, 100));
    }
    await watcher.end();
    let movedAt = 0;
    // The move, meanwhile (it may wait for the refresh's locks on the shard; released below).
    const moved = db.pool
      .query(
        `SELECT citus_move_shard_placement($1::bigint, '127.0.0.1', $2, '127.0.0.1', $3, shard_transfer_mode => 'block_writes')`,
        [moving.shardid, second, first],
      )
      .then(
        () => {
          movedAt = Date.now();
          return 'moved';
        },
        (error: unknown) => `move failed: ${String(error)}`,
      );
    await new Promise((r) => setTimeout(r, 2000));
    const releasedAt = Date.now();
    await holder.query('ROLLBACK');
    await holder.end();
    const refreshed = await refreshing;
    const refreshedAt = Date.now();
    expect(await moved).toBe('moved');
    // The refresh either committed (on every node) or failed and wrote nothing; either way the next
    // runs are exact. Which it was is recorded for the report of this test.
    const outcome = refreshed.code === 0 ? 'committed' : `failed: ${refreshed.stderr.split('\n')[0] ?? ''}`;
    expect(outcome, refreshed.stdout + refreshed.stderr).toMatch(/^(committed|failed: .*)$/);

    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       VALUES ($1, 3, 1, 'success', now() - interval '2 hours', 42, 1)`,
      [moving.ws],
    );
    const next = (await runTask('hourly_rollup')) as {
      result: {
        rollups: Array<{ rollup: string; nodes?: Array<{ node: string; shardsRecomputed: number }> }>;
      };
    };
    const nodes = next.result.rollups.find((r) => r.rollup === table)?.nodes ?? [];
    // The node that received the shard recomputes it whole (a new placement id).
    expect(nodes.find((n) => n.node === `127.0.0.1:${first}`)?.shardsRecomputed).toBeGreaterThanOrEqual(1);
    for (const task of allGrains.slice(1)) await runTask(task);
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
    console.info(
      `shard move during a refresh: the refresh ${outcome}; move done ${movedAt - releasedAt} ms after the lock was released, refresh ${refreshedAt - releasedAt} ms`,
    );
  });
  it('a refresh killed at its hard time limit by a worker writes nothing on any node, and the next run is exact', async () => {
    const table = 'execution_metrics_hourly';
    for (const task of allGrains) await runTask(task);
    await writeMore();
    const before = await snapshot(table);
    // hard = soft = 4 s: the worker aborts the task's signal and terminates its sessions.
    const runtime = await testRuntime('postgres', db, {
      env: {
        ANALYTICS_TIMEZONE: ZONE,
        TASK_TIME_LIMITS: 'hourly_rollup=4:4',
        ROLLUP_LOCK_TIMEOUT_MS: '120000',
      },
    });
    const worker = await startWorker(runtime, workerOptions({ name: 'citus-hard', concurrency: 1 }));
    const [, second] = db.ports.workerPorts as [number, number];
    const holder = await onNode(second);
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE aggjobs_node.rollup_state IN SHARE ROW EXCLUSIVE MODE');
      const handle = await runtime.enqueue('hourly_rollup', {});
      const failure = await handle.get({ timeout: 60 }).then(
        () => undefined,
        (error: unknown) => error as { run?: { state: string; error: string | null } },
      );
      expect(failure?.run?.state).toBe('timed_out');
      expect(failure?.run?.error).toMatch(/exceeded the hard time limit of 4 s: the task was killed/);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
      await worker.close();
    }
    // The waiting node's session rolls back once the lock is gone (its client is gone).
    const watcher = await onNode(second);
    for (let i = 0; i < 100; i++) {
      const { rows } = await watcher.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()`,
      );
      if (rows[0]?.n === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await watcher.end();
    expect(await snapshot(table)).toEqual(before);
    for (const task of allGrains) await runTask(task);
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
  });
});
