import { releaseClient, type Pool, type Queryable } from '../db/index.ts';
import { citusInstalled } from './citus-install.ts';
import { createCitusViews, refreshCitusViews } from './citus-views.ts';
import { literal } from './sql-identifier.ts';

interface ViewDefinition {
  name: string;
  /** Source tables it reads, with change capture; a change to any of them makes the next refresh run. */
  inputs: string[];
  /** Reads public.workspaces (small, no change capture): its content is hashed into the inputs token. */
  readsWorkspaces: boolean;
  /** Reads "the last 30 days": its content also changes when the day changes. */
  dependsOnDay: boolean;
  uniqueKey: string[];
  sql: (zone: string) => string;
}

const views: readonly ViewDefinition[] = [
  {
    name: 'mv_daily_user_metrics',
    inputs: ['public.execution_logs', 'public.user_activity_events'],
    readsWorkspaces: false,
    dependsOnDay: false,
    uniqueKey: ['day', 'workspace_id', 'user_id'],
    sql: (zone) => `
WITH e AS (
  SELECT date_trunc('day', started_at, ${zone}) AS day, workspace_id, user_id,
         count(*) AS executions, sum(credits_used) AS credits_used
  FROM public.execution_logs GROUP BY 1, 2, 3
), a AS (
  SELECT date_trunc('day', occurred_at, ${zone}) AS day, workspace_id, user_id, count(*) AS activity_events
  FROM public.user_activity_events GROUP BY 1, 2, 3
)
SELECT day, workspace_id, user_id,
       coalesce(e.executions, 0) AS executions,
       coalesce(e.credits_used, 0) AS credits_used,
       coalesce(a.activity_events, 0) AS activity_events
FROM e FULL JOIN a USING (day, workspace_id, user_id)`,
  },
  {
    name: 'mv_hourly_execution_stats',
    inputs: ['public.execution_logs'],
    readsWorkspaces: false,
    dependsOnDay: false,
    uniqueKey: ['hour'],
    sql: (zone) => `
SELECT date_trunc('hour', started_at, ${zone}) AS hour,
       count(*) AS executions_total,
       count(*) FILTER (WHERE status = 'success') AS executions_succeeded,
       count(*) FILTER (WHERE status IN ('failed', 'timeout')) AS executions_failed,
       round(count(*) FILTER (WHERE status = 'success')::numeric
             / nullif(count(*) FILTER (WHERE status <> 'running'), 0), 4) AS success_rate,
       avg(duration_ms)::double precision AS duration_ms_avg,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS duration_ms_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS duration_ms_p95,
       max(duration_ms) AS duration_ms_max,
       count(DISTINCT workspace_id) AS active_workspaces
FROM public.execution_logs
GROUP BY 1`,
  },
  {
    name: 'mv_workspace_summary',
    inputs: ['public.execution_logs', 'public.user_activity_events'],
    readsWorkspaces: true,
    dependsOnDay: true,
    uniqueKey: ['workspace_id'],
    // "Last 30 days" counts from the start of today in the analytics zone, so the view changes once
    // a day and with its inputs, never in between.
    sql: (zone) => `
WITH since AS (
  SELECT date_trunc('day', now(), ${zone}) - interval '30 days' AS t
), e AS (
  SELECT workspace_id,
         count(*) AS executions_30d,
         count(*) FILTER (WHERE status = 'success') AS succeeded_30d,
         count(*) FILTER (WHERE status <> 'running') AS finished_30d,
         sum(credits_used) AS credits_used_30d,
         count(DISTINCT user_id) AS active_users_30d,
         max(started_at) AS last_execution_at
  FROM public.execution_logs, since WHERE started_at >= since.t
  GROUP BY 1
), a AS (
  SELECT workspace_id, max(occurred_at) AS last_event_at
  FROM public.user_activity_events, since WHERE occurred_at >= since.t
  GROUP BY 1
)
SELECT workspace_id,
       w.name AS workspace_name,
       coalesce(e.executions_30d, 0) AS executions_30d,
       round(e.succeeded_30d::numeric / nullif(e.finished_30d, 0), 4) AS success_rate_30d,
       coalesce(e.credits_used_30d, 0) AS credits_used_30d,
       coalesce(e.active_users_30d, 0) AS active_users_30d,
       greatest(e.last_execution_at, a.last_event_at) AS last_activity_at
FROM e FULL JOIN a USING (workspace_id)
LEFT JOIN public.workspaces w ON w.id = workspace_id`,
  },
];

export const materializedViewNames: readonly string[] = views.map((v) => v.name);

/** A view's defining query over the source tables, for time zone `timezone` (the tests' oracle on Citus). */
export function materializedViewSql(name: string, timezone: string): string {
  const view = views.find((v) => v.name === name);
  if (view === undefined) throw new Error(`no materialized view ${JSON.stringify(name)}`);
  return view.sql(literal(timezone));
}

/**
 * Creates the seed's materialized views (empty: the first refresh fills them), with the unique
 * indexes that REFRESH … CONCURRENTLY needs. A view built for another time zone is rebuilt.
 * On a Citus coordinator, views and a table over the view rollups instead (citus-views.ts).
 * Returns the names it created.
 */
export async function createMaterializedViews(
  db: Queryable,
  options: { timezone: string },
): Promise<string[]> {
  if (await citusInstalled(db)) return createCitusViews(db, options);
  const created: string[] = [];
  for (const view of views) {
    const { rows } = await db.query<{ zone: string | null }>(
      `SELECT obj_description(c.oid, 'pg_class') AS zone FROM pg_class c
       WHERE c.relnamespace = 'analytics'::regnamespace AND c.relname = $1 AND c.relkind = 'm'`,
      [view.name],
    );
    const tag = `aggjobs: time zone ${options.timezone}`;
    if (rows[0] !== undefined && rows[0].zone === tag) continue;
    await db.query(`DROP MATERIALIZED VIEW IF EXISTS analytics.${view.name}`);
    await db.query(`DELETE FROM aggjobs.view_refreshes WHERE view_name = $1`, [view.name]);
    await db.query(
      `CREATE MATERIALIZED VIEW analytics.${view.name} AS ${view.sql(literal(options.timezone))} WITH NO DATA`,
    );
    await db.query(
      `CREATE UNIQUE INDEX ${view.name}_key ON analytics.${view.name} (${view.uniqueKey.join(', ')})`,
    );
    await db.query(`COMMENT ON MATERIALIZED VIEW analytics.${view.name} IS ${literal(tag)}`);
    created.push(view.name);
  }
  return created;
}

export interface ViewRefreshOptions {
  timezone: string;
  /** Refresh even when the inputs did not change. */
  force?: boolean;
  statementTimeoutMs?: number;
  /** How long a refresh waits for another refresh of the same view (default 30 s). */
  lockTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface ViewRefreshResult {
  view: string;
  status: 'refreshed' | 'skipped';
  /** Why it ran or why not. */
  reason: string;
  durationMs: number;
  rows?: number;
}

/**
 * Refreshes each view whose inputs changed since its last refresh (REFRESH … CONCURRENTLY once
 * populated: readers are never blocked), and reports the others as skipped. On a Citus coordinator,
 * the view rollups per node and the hourly table (citus-views.ts).
 */
export async function refreshMaterializedViews(
  pool: Pool,
  options: ViewRefreshOptions,
): Promise<ViewRefreshResult[]> {
  if (await citusInstalled(pool)) return refreshCitusViews(pool, options);
  const results: ViewRefreshResult[] = [];
  for (const view of views) {
    if (options.signal?.aborted === true) break;
    results.push(await refreshView(pool, view, options));
  }
  return results;
}

async function refreshView(
  pool: Pool,
  view: ViewDefinition,
  options: ViewRefreshOptions,
): Promise<ViewRefreshResult> {
  const started = performance.now();
  const client = await pool.connect();
  let pid: number | undefined;
  const cancel = (): void => {
    if (pid !== undefined) void pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
  };
  options.signal?.addEventListener('abort', cancel, { once: true });
  let locked = false;
  try {
    const { rows: pidRows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    pid = pidRows[0]?.pid;
    // Serializes refreshes of one view across processes, waiting for the one in progress. Taken
    // before the transaction so that its snapshot sees what the previous refresh committed (a
    // REPEATABLE READ snapshot older than that commit would fail with a serialization error).
    await client.query(`SELECT set_config('lock_timeout', $1, false)`, [
      String(options.lockTimeoutMs ?? 30_000),
    ]);
    await client.query("SELECT pg_advisory_lock(hashtext('aggjobs.view'), hashtext($1))", [view.name]);
    locked = true;
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    try {
      await client.query(`SELECT set_config('statement_timeout', $1, true)`, [
        String(options.statementTimeoutMs ?? 900_000),
      ]);
      const { rows } = await client.query<{
        horizon: string;
        snapshot: string;
        token: string;
        populated: boolean;
        last: string | null;
        last_snapshot: string | null;
        last_token: string | null;
      }>(
        `SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS horizon, pg_current_snapshot()::text AS snapshot,
                (SELECT snapshot::text FROM aggjobs.view_refreshes WHERE view_name = $1) AS last_snapshot,
                (SELECT ispopulated FROM pg_matviews WHERE schemaname = 'analytics' AND matviewname = $1) AS populated,
                (SELECT horizon::text FROM aggjobs.view_refreshes WHERE view_name = $1) AS last,
                (SELECT inputs_token FROM aggjobs.view_refreshes WHERE view_name = $1) AS last_token,
                jsonb_build_object(
                  'cutoffs', (SELECT jsonb_object_agg(source_table, cutoff) FROM aggjobs.retention_watermarks
                              WHERE source_table = ANY($2::text[])),
                  'day', CASE WHEN $3 THEN date_trunc('day', now(), $4::text) END,
                  'workspaces', CASE WHEN $5 THEN (SELECT md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM public.workspaces) END
                )::text AS token`,
        [view.name, view.inputs, view.dependsOnDay, options.timezone, view.readsWorkspaces],
      );
      const state = rows[0];
      if (state === undefined)
        throw new Error(`materialized view analytics.${view.name} does not exist: run aggjobs migrate`);
      let reason: string | undefined;
      if (options.force === true) reason = 'forced';
      else if (!state.populated) reason = 'never populated';
      else if (state.last === null || state.last_snapshot === null) reason = 'no refresh on record';
      else if (state.last_token !== state.token)
        reason = 'retention ran, the day changed or workspaces changed';
      else if (await inputsChanged(client, view.inputs, state.last, state.last_snapshot))
        reason = 'inputs changed';
      if (reason === undefined) {
        await client.query('COMMIT');
        return {
          view: view.name,
          status: 'skipped',
          reason: 'inputs unchanged since the last refresh',
          durationMs: Math.round(performance.now() - started),
        };
      }
      await client.query(
        `REFRESH MATERIALIZED VIEW ${state.populated ? 'CONCURRENTLY ' : ''}analytics.${view.name}`,
      );
      const { rows: countRows } = await client.query<{ n: number }>(
        `SELECT count(*) AS n FROM analytics.${view.name}`,
      );
      const durationMs = Math.round(performance.now() - started);
      await client.query(
        `INSERT INTO aggjobs.view_refreshes (view_name, snapshot, horizon, inputs_token, refreshed_at, duration_ms)
         VALUES ($1, $5::pg_snapshot, $2::xid8, $3, now(), $4)
         ON CONFLICT (view_name) DO UPDATE SET snapshot = EXCLUDED.snapshot, horizon = EXCLUDED.horizon, inputs_token = EXCLUDED.inputs_token,
           refreshed_at = EXCLUDED.refreshed_at, duration_ms = EXCLUDED.duration_ms`,
        [view.name, state.horizon, state.token, durationMs, state.snapshot],
      );
      await client.query('COMMIT');
      return { view: view.name, status: 'refreshed', reason, durationMs, rows: countRows[0]?.n ?? 0 };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  } finally {
    options.signal?.removeEventListener('abort', cancel);
    // A session that cannot unlock or reset (killed, server gone) is closed, not pooled.
    let broken: unknown;
    const keep = (error: unknown): void => {
      broken ??= error;
    };
    if (locked) {
      await client
        .query("SELECT pg_advisory_unlock(hashtext('aggjobs.view'), hashtext($1))", [view.name])
        .catch(keep);
    }
    await client.query('RESET lock_timeout').catch(keep);
    releaseClient(client, broken);
  }
}

/** Whether any input has a write (or a logged delete) by a transaction not visible in the last refresh's snapshot. */
async function inputsChanged(
  db: Queryable,
  inputs: string[],
  horizon: string,
  snapshot: string,
): Promise<boolean> {
  for (const input of inputs) {
    const { rows } = await db.query<{ changed: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM ${input} WHERE aggjobs_xid >= $1::xid8 AND NOT pg_visible_in_snapshot(aggjobs_xid, $3::pg_snapshot))
           OR EXISTS (SELECT 1 FROM aggjobs.change_log
                      WHERE source_table = $2 AND xid >= $1::xid8 AND NOT pg_visible_in_snapshot(xid, $3::pg_snapshot)) AS changed`,
      [horizon, input, snapshot],
    );
    if (rows[0]?.changed === true) return true;
  }
  return false;
}
