import { createHash } from 'node:crypto';
import type { Pool, Queryable } from '../db/index.ts';
import { releaseClient } from '../db/index.ts';
import { viewRollups } from './citus-view-rollups.ts';
import type { ViewRefreshOptions, ViewRefreshResult } from './materialized-views.ts';
import { refreshRollup, type RefreshResult } from './refresh.ts';
import { literal } from './sql-identifier.ts';
import { HOURLY, HOURLY_TABLE, HOURS_TABLE, refreshHourlyStats } from './citus-hourly-stats.ts';

/**
 * The seed's three materialized views on a Citus coordinator (docs/scaling.md "The materialized
 * views on Citus"). A materialized view there is a coordinator table filled by its query, and its
 * query over the distributed sources pulls what it groups to the coordinator: every source row for
 * mv_hourly_execution_stats, whose percentiles group by hour across workspaces. Instead, under the
 * same names and columns:
 *
 * - mv_daily_user_metrics and mv_workspace_summary group by workspace_id: each is a plain view over
 *   the view rollups (citus-view-rollups.ts), whose groups include workspace_id, so Citus runs the
 *   view's grouping and join on the workers, co-located, and sends the coordinator the view's rows.
 *   A plain view is current as of its rollups' last refresh, and "the last 30 days" of
 *   mv_workspace_summary counts from the start of today when it is read.
 * - mv_hourly_execution_stats groups by hour alone, across workspaces: it cannot be a view that
 *   Citus runs on the workers. It is a table on the coordinator, refreshed from the rollup rows of
 *   view_execution_stats_hourly, not from source rows (citus-hourly-stats.ts).
 *
 * A refresh first refreshes the view rollups incrementally (per node: a node that is down fails it,
 * naming the node, before anything is written), then the hourly table, all under one advisory lock.
 */

/** Views over the view rollups, and the hourly table, by name. */
const VIEW_SQL: Record<'mv_daily_user_metrics' | 'mv_workspace_summary', (zone: string) => string> = {
  // Days of the zone are whole hours of the zone, so a day sums its hours.
  mv_daily_user_metrics: (zone) => `
WITH e AS (
  SELECT date_trunc('day', bucket_start, ${zone}) AS day, workspace_id, user_id,
         sum(executions)::bigint AS executions, sum(credits_used) AS credits_used
  FROM analytics.view_user_executions_hourly GROUP BY 1, 2, 3
), a AS (
  SELECT date_trunc('day', bucket_start, ${zone}) AS day, workspace_id, user_id,
         sum(activity_events)::bigint AS activity_events
  FROM analytics.view_user_activity_hourly GROUP BY 1, 2, 3
)
SELECT day, workspace_id, user_id,
       coalesce(e.executions, 0) AS executions,
       coalesce(e.credits_used, 0) AS credits_used,
       coalesce(a.activity_events, 0) AS activity_events
FROM e FULL JOIN a USING (day, workspace_id, user_id)`,
  // The start of today minus 30 days is an hour of the zone (for every zone whose offset changes
  // by whole hours), so the hours from it hold exactly the rows from it.
  //
  // Written so that each worker plans its shards' part from their statistics. The cutoff is an
  // expression in the WHERE clause, evaluated by each worker (the hour is the same on every node
  // but within the nodes' clock skew of a midnight), not a CTE: Citus sent a CTE's one row to the
  // workers as an intermediate result, joined by a function scan that the workers' planner guessed
  // at 1,000 rows, so each shard's part was costed at 2.6 million, past jit_above_cost, and each
  // read compiled 39 functions per shard (1.1 s of a task's 1.3 s; a read of 200 rows took 1.2-2.4 s
  // on the bench's data, 0.2-0.4 s this way). The distinct users of a workspace are counted as
  // its (workspace, user) groups, each summed first (a hash aggregate of a few rows per user), not
  // by count(DISTINCT), which sorted every hourly row of the 30 days by workspace.
  mv_workspace_summary: (zone) => `
WITH e AS (
  SELECT workspace_id,
         sum(executions)::bigint AS executions_30d,
         sum(executions_succeeded) AS succeeded_30d,
         sum(executions_finished) AS finished_30d,
         sum(credits_used) AS credits_used_30d,
         count(*) AS active_users_30d,
         max(last_started_at) AS last_execution_at
  FROM (
    SELECT workspace_id, user_id,
           sum(executions) AS executions, sum(executions_succeeded) AS executions_succeeded,
           sum(executions_finished) AS executions_finished, sum(credits_used) AS credits_used,
           max(last_started_at) AS last_started_at
    FROM analytics.view_user_executions_hourly
    WHERE bucket_start >= date_trunc('day', now(), ${zone}) - interval '30 days'
    GROUP BY workspace_id, user_id
  ) u
  GROUP BY 1
), a AS (
  SELECT workspace_id, max(last_occurred_at) AS last_event_at
  FROM analytics.view_user_activity_hourly
  WHERE bucket_start >= date_trunc('day', now(), ${zone}) - interval '30 days'
  GROUP BY 1
)
SELECT workspace_id,
       w.name AS workspace_name,
       coalesce(e.executions_30d, 0) AS executions_30d,
       round(e.succeeded_30d / nullif(e.finished_30d, 0), 4) AS success_rate_30d,
       coalesce(e.credits_used_30d, 0) AS credits_used_30d,
       coalesce(e.active_users_30d, 0) AS active_users_30d,
       greatest(e.last_execution_at, a.last_event_at) AS last_activity_at
FROM e FULL JOIN a USING (workspace_id)
LEFT JOIN public.workspaces w ON w.id = workspace_id`,
};

type ViewName = keyof typeof VIEW_SQL | typeof HOURLY;
const NAMES: readonly ViewName[] = ['mv_daily_user_metrics', HOURLY, 'mv_workspace_summary'];

/** The rollups each view is read from. */
const INPUTS: Record<ViewName, readonly string[]> = {
  mv_daily_user_metrics: ['view_user_executions_hourly', 'view_user_activity_hourly'],
  mv_hourly_execution_stats: ['view_execution_stats_hourly'],
  mv_workspace_summary: ['view_user_executions_hourly', 'view_user_activity_hourly'],
};

/**
 * Creates the three views on Citus (the view rollups are installed by installRollups): replaces a
 * materialized view of the same name (a database migrated before), and what was built for another
 * time zone or, for a view, from another definition (its comment names its SQL's fingerprint, so an
 * upgrade's new definition replaces the old at the next migrate). Returns the names it created.
 */
export async function createCitusViews(db: Queryable, options: { timezone: string }): Promise<string[]> {
  const zone = literal(options.timezone);
  const zoneTag = `aggjobs: time zone ${options.timezone}`;
  const tagOf = (name: ViewName): string =>
    name === HOURLY
      ? zoneTag
      : `${zoneTag}, definition ${createHash('sha256').update(VIEW_SQL[name](zone)).digest('hex').slice(0, 12)}`;
  await db.query(HOURS_TABLE);
  const created: string[] = [];
  for (const name of NAMES) {
    const want = name === HOURLY ? 'r' : 'v';
    const tag = tagOf(name);
    const { rows } = await db.query<{ kind: string; zone: string | null }>(
      `SELECT c.relkind::text AS kind, obj_description(c.oid, 'pg_class') AS zone FROM pg_class c
       WHERE c.relnamespace = 'analytics'::regnamespace AND c.relname = $1`,
      [name],
    );
    const found = rows[0];
    if (found !== undefined && found.kind === want && found.zone === tag) continue;
    if (found !== undefined) {
      const kind = { m: 'MATERIALIZED VIEW', v: 'VIEW', r: 'TABLE' }[found.kind];
      if (kind === undefined)
        throw new Error(`analytics.${name} exists and is not a view or a table: drop it and migrate again`);
      await db.query(`DROP ${kind} analytics.${name}`);
    }
    await db.query(`DELETE FROM aggjobs.view_refreshes WHERE view_name = $1`, [name]);
    if (name === HOURLY) {
      await db.query(HOURLY_TABLE);
      await db.query('TRUNCATE aggjobs.citus_view_hours');
      await db.query(`COMMENT ON TABLE analytics.${name} IS ${literal(tag)}`);
    } else {
      await db.query(`CREATE VIEW analytics.${name} AS ${VIEW_SQL[name](zone)}`);
      await db.query(`COMMENT ON VIEW analytics.${name} IS ${literal(tag)}`);
    }
    created.push(name);
  }
  return created;
}

/**
 * refresh_materialized_views on Citus (see the top of this file): the view rollups incrementally,
 * per node, then the hourly table; a view is reported refreshed when a rollup it reads changed.
 */
export async function refreshCitusViews(
  pool: Pool,
  options: ViewRefreshOptions,
): Promise<ViewRefreshResult[]> {
  const started = performance.now();
  const client = await pool.connect();
  let locked = false;
  let broken: unknown;
  try {
    await client.query(`SELECT set_config('lock_timeout', $1, false)`, [
      String(options.lockTimeoutMs ?? 30_000),
    ]);
    await client.query("SELECT pg_advisory_lock(hashtext('aggjobs.view'), hashtext('citus views'))");
    locked = true;
    await client.query(`SELECT set_config('statement_timeout', $1, false)`, [
      String(options.statementTimeoutMs ?? 900_000),
    ]);
    const rollups = new Map<string, RefreshResult>();
    for (const def of viewRollups) {
      options.signal?.throwIfAborted();
      rollups.set(
        def.name,
        await refreshRollup(pool, def, {
          timezone: options.timezone,
          mode: { kind: 'incremental' },
          statementTimeoutMs: options.statementTimeoutMs,
          lockTimeoutMs: options.lockTimeoutMs,
          signal: options.signal,
        }),
      );
    }
    options.signal?.throwIfAborted();
    const { rows: recorded } = await client.query<{ view_name: string }>(
      'SELECT view_name FROM aggjobs.view_refreshes WHERE view_name = ANY ($1::text[])',
      [NAMES],
    );
    const hourly = await refreshHourlyStats(client, { force: options.force });
    const results: ViewRefreshResult[] = [];
    for (const name of NAMES) {
      const inputs = INPUTS[name].map((r) => rollups.get(r));
      const changes = inputs.reduce((s, r) => s + (r?.rowsWritten ?? 0) + (r?.rowsDeleted ?? 0), 0);
      const first = !recorded.some((r) => r.view_name === name);
      const hourlyChanged = name === HOURLY && hourly.hoursRecomputed + hourly.hoursDeleted > 0;
      const durationMs = Math.round(performance.now() - started);
      if (options.force !== true && !first && changes === 0 && !hourlyChanged) {
        results.push({
          view: name,
          status: 'skipped',
          reason: 'inputs unchanged since the last refresh (its rollups changed on no Citus node)',
          durationMs,
        });
        continue;
      }
      const { rows: counted } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM analytics.${name}`,
      );
      await client.query(
        `INSERT INTO aggjobs.view_refreshes (view_name, snapshot, horizon, inputs_token, refreshed_at, duration_ms)
         VALUES ($1, pg_current_snapshot(), pg_snapshot_xmin(pg_current_snapshot()), 'citus', now(), $2)
         ON CONFLICT (view_name) DO UPDATE SET snapshot = EXCLUDED.snapshot, horizon = EXCLUDED.horizon,
           inputs_token = EXCLUDED.inputs_token, refreshed_at = EXCLUDED.refreshed_at, duration_ms = EXCLUDED.duration_ms`,
        [name, durationMs],
      );
      const how =
        name === HOURLY
          ? `${hourly.hoursRecomputed} hour(s) recomputed and ${hourly.hoursDeleted} removed from the rollup's rows ` +
            `(${hourly.searchSteps} percentile search step(s) on the workers)`
          : 'a view over them';
      results.push({
        view: name,
        status: 'refreshed',
        reason:
          `${options.force === true ? 'forced' : first ? 'no refresh on record' : 'inputs changed'}: on Citus, ` +
          `${INPUTS[name].join(' and ')} refreshed per node (${changes} row(s) changed); ${how}`,
        durationMs,
        rows: counted[0]?.n ?? 0,
      });
    }
    return results;
  } finally {
    const keep = (error: unknown): void => {
      broken ??= error;
    };
    if (locked)
      await client
        .query("SELECT pg_advisory_unlock(hashtext('aggjobs.view'), hashtext('citus views'))")
        .catch(keep);
    await client.query('RESET lock_timeout; RESET statement_timeout').catch(keep);
    releaseClient(client, broken);
  }
}
