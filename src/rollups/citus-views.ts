import type { Pool, PoolClient, Queryable } from '../db/index.ts';
import { releaseClient } from '../db/index.ts';
import { viewRollups } from './citus-view-rollups.ts';
import type { ViewRefreshOptions, ViewRefreshResult } from './materialized-views.ts';
import { refreshRollup, type RefreshResult } from './refresh.ts';
import { literal } from './sql-identifier.ts';

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
 *   view_execution_stats_hourly, not from source rows: a per-hour fingerprint of those rows
 *   (computed on the workers, one row per hour and shard) picks the hours that changed; their
 *   counts, sums and maximum add up on the workers; their percentiles are found by a binary search
 *   for the value of each rank, each step counting the durations at or below a value on the workers
 *   (`width_bucket` over each group's sorted durations). The coordinator receives numbers, never
 *   durations.
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
  mv_workspace_summary: (zone) => `
WITH since AS (
  SELECT date_trunc('day', now(), ${zone}) - interval '30 days' AS t
), e AS (
  SELECT workspace_id,
         sum(executions)::bigint AS executions_30d,
         sum(executions_succeeded) AS succeeded_30d,
         sum(executions_finished) AS finished_30d,
         sum(credits_used) AS credits_used_30d,
         count(DISTINCT user_id) AS active_users_30d,
         max(last_started_at) AS last_execution_at
  FROM analytics.view_user_executions_hourly, since WHERE bucket_start >= since.t
  GROUP BY 1
), a AS (
  SELECT workspace_id, max(last_occurred_at) AS last_event_at
  FROM analytics.view_user_activity_hourly, since WHERE bucket_start >= since.t
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

const HOURLY = 'mv_hourly_execution_stats';

const HOURLY_TABLE = `
CREATE TABLE analytics.${HOURLY} (
  hour                 timestamptz PRIMARY KEY,
  executions_total     bigint NOT NULL,
  executions_succeeded bigint NOT NULL,
  executions_failed    bigint NOT NULL,
  success_rate         numeric,
  duration_ms_avg      double precision,
  duration_ms_p50      double precision,
  duration_ms_p95      double precision,
  duration_ms_max      integer,
  active_workspaces    bigint NOT NULL
)`;

/** Per hour, the fingerprint of view_execution_stats_hourly's rows the hourly table was built from. */
const HOURS_TABLE = `
CREATE TABLE IF NOT EXISTS aggjobs.citus_view_hours (
  hour        timestamptz PRIMARY KEY,
  groups      bigint NOT NULL,
  fingerprint numeric NOT NULL
)`;

/**
 * The statements the hourly table's refresh runs on the cluster (exported for the tests' EXPLAIN).
 * Each groups rollup rows on the workers: the coordinator receives one row per hour and shard.
 */
export const hourlyStatsSql = {
  /** Per hour: its groups and the sum of a 64-bit hash of each group's row. */
  fingerprints: `
SELECT r.bucket_start AS hour, count(*)::bigint AS groups,
       sum(hashtextextended((r.workspace_id, r.executions_total, r.executions_succeeded, r.executions_failed,
                             r.executions_finished, r.duration_count, r.duration_sum, r.duration_max,
                             r.durations)::text, 0)::numeric)::text AS fingerprint
FROM analytics.view_execution_stats_hourly r
GROUP BY 1`,
  /** $1 hours: what adds up over an hour's groups. */
  totals: `
SELECT r.bucket_start AS hour,
       sum(r.executions_total)::bigint AS total, sum(r.executions_succeeded)::bigint AS succeeded,
       sum(r.executions_failed)::bigint AS failed, sum(r.executions_finished)::bigint AS finished,
       sum(r.duration_count)::bigint AS durations, sum(r.duration_sum)::text AS duration_sum,
       max(r.duration_max) AS duration_max, min(r.durations[1]) AS duration_min,
       count(*)::bigint AS workspaces
FROM analytics.view_execution_stats_hourly r
WHERE r.bucket_start = ANY ($1::timestamptz[])
GROUP BY 1`,
  /**
   * $1 target ids, $2 their hours, $3 a value each: per target, how many durations of its hour are
   * at or below the value (`width_bucket` of a sorted array: the number of its elements <= value).
   */
  countAtOrBelow: `
SELECT q.i, sum(width_bucket(q.x, r.durations))::bigint AS n
FROM analytics.view_execution_stats_hourly r
JOIN unnest($1::int[], $2::timestamptz[], $3::int[]) AS q(i, hour, x) ON r.bucket_start = q.hour
GROUP BY q.i`,
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
 * time zone. Returns the names it created.
 */
export async function createCitusViews(db: Queryable, options: { timezone: string }): Promise<string[]> {
  const zone = literal(options.timezone);
  const tag = `aggjobs: time zone ${options.timezone}`;
  await db.query(HOURS_TABLE);
  const created: string[] = [];
  for (const name of NAMES) {
    const want = name === HOURLY ? 'r' : 'v';
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

interface HourTotals {
  hour: Date;
  total: string;
  succeeded: string;
  failed: string;
  finished: string;
  durations: string;
  duration_sum: string | null;
  duration_max: number | null;
  duration_min: number | null;
  workspaces: string;
}

/** What the hourly table's refresh did. */
export interface HourlyStatsRefresh {
  hoursRecomputed: number;
  hoursDeleted: number;
  /** Steps of the percentiles' binary search (one statement on the cluster each). */
  searchSteps: number;
}

const PERCENTILES = [0.5, 0.95] as const;

/**
 * For each (hour, rank), the smallest duration v of that hour with at least `rank` durations <= v:
 * the rank-th smallest duration. Every step halves every target's interval at once.
 */
async function durationsAtRanks(
  db: Queryable,
  targets: Array<{ hour: Date; rank: number; lo: number; hi: number }>,
): Promise<{ values: number[]; steps: number }> {
  const lo = targets.map((t) => t.lo);
  const hi = targets.map((t) => t.hi);
  let steps = 0;
  for (;;) {
    const open = targets.map((_, i) => i).filter((i) => (lo[i] ?? 0) < (hi[i] ?? 0));
    if (open.length === 0) break;
    const mids = open.map((i) => Math.floor(((lo[i] ?? 0) + (hi[i] ?? 0)) / 2));
    const { rows } = await db.query<{ i: number; n: string }>(hourlyStatsSql.countAtOrBelow, [
      open,
      open.map((i) => targets[i]?.hour),
      mids,
    ]);
    steps += 1;
    const counts = new Map(rows.map((r) => [r.i, Number(r.n)]));
    open.forEach((i, k) => {
      const mid = mids[k] ?? 0;
      if ((counts.get(i) ?? 0) >= (targets[i]?.rank ?? 0)) hi[i] = mid;
      else lo[i] = mid + 1;
    });
  }
  return { values: lo, steps };
}

/**
 * Brings analytics.mv_hourly_execution_stats up to date with view_execution_stats_hourly's rows
 * (see the top of this file). `client` holds the views' lock; nothing else writes those rows.
 */
export async function refreshHourlyStats(
  client: PoolClient,
  options: { force?: boolean },
): Promise<HourlyStatsRefresh> {
  const { rows: now } = await client.query<{ hour: Date; groups: string; fingerprint: string }>(
    hourlyStatsSql.fingerprints,
  );
  const { rows: stored } = await client.query<{ hour: Date; groups: string; fingerprint: string }>(
    'SELECT hour, groups::text AS groups, fingerprint::text AS fingerprint FROM aggjobs.citus_view_hours',
  );
  const key = (r: { groups: string; fingerprint: string }): string => `${r.groups}/${r.fingerprint}`;
  const before = new Map(stored.map((r) => [r.hour.getTime(), key(r)]));
  const present = new Set(now.map((r) => r.hour.getTime()));
  const changed = now.filter((r) => options.force === true || before.get(r.hour.getTime()) !== key(r));
  const deleted = stored.filter((r) => !present.has(r.hour.getTime())).map((r) => r.hour);

  let steps = 0;
  let totals: HourTotals[] = [];
  const ranks: number[][] = [];
  if (changed.length > 0) {
    ({ rows: totals } = await client.query<HourTotals>(hourlyStatsSql.totals, [changed.map((r) => r.hour)]));
    // percentile_cont's ranks (PostgreSQL's orderedsetaggs.c): floor and ceil of p * (n - 1), 0-based.
    const targets: Array<{ hour: Date; rank: number; lo: number; hi: number }> = [];
    for (const t of totals) {
      const n = Number(t.durations);
      const wanted: number[] = [];
      if (n > 0 && t.duration_min !== null && t.duration_max !== null)
        for (const p of PERCENTILES) {
          for (const row of [Math.floor(p * (n - 1)), Math.ceil(p * (n - 1))]) {
            wanted.push(targets.length);
            targets.push({ hour: t.hour, rank: row + 1, lo: t.duration_min, hi: t.duration_max });
          }
        }
      ranks.push(wanted);
    }
    const found = await durationsAtRanks(client, targets);
    steps = found.steps;
    totals.forEach((_, k) => {
      ranks[k] = (ranks[k] ?? []).map((i) => found.values[i] ?? 0);
    });
  }

  await client.query('BEGIN');
  try {
    if (deleted.length > 0) {
      await client.query(`DELETE FROM analytics.${HOURLY} WHERE hour = ANY ($1::timestamptz[])`, [deleted]);
      await client.query('DELETE FROM aggjobs.citus_view_hours WHERE hour = ANY ($1::timestamptz[])', [
        deleted,
      ]);
    }
    if (totals.length > 0) {
      const column = <K extends keyof HourTotals>(k: K): Array<HourTotals[K]> => totals.map((t) => t[k]);
      const at = (j: number): Array<number | null> =>
        ranks.map((r) => (r.length === 4 ? (r[j] ?? null) : null));
      // The percentiles as percentile_cont interpolates them, in float8 arithmetic:
      // lo + (hi - lo) * (p * (n - 1) - floor(p * (n - 1))).
      const lerp = (p: number, lo: string, hi: string): string =>
        `${lo}::float8 + (${hi}::float8 - ${lo}::float8) * (${p}::float8 * (u.durations - 1)::float8 - floor(${p}::float8 * (u.durations - 1)::float8))`;
      await client.query(
        `INSERT INTO analytics.${HOURLY} AS t
           (hour, executions_total, executions_succeeded, executions_failed, success_rate, duration_ms_avg,
            duration_ms_p50, duration_ms_p95, duration_ms_max, active_workspaces)
         SELECT u.hour, u.total, u.succeeded, u.failed,
                round(u.succeeded::numeric / nullif(u.finished, 0), 4),
                (u.duration_sum / nullif(u.durations, 0)::numeric)::double precision,
                ${lerp(0.5, 'u.p50_lo', 'u.p50_hi')}, ${lerp(0.95, 'u.p95_lo', 'u.p95_hi')},
                u.duration_max, u.workspaces
         FROM unnest($1::timestamptz[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                     $7::numeric[], $8::int[], $9::bigint[], $10::int[], $11::int[], $12::int[], $13::int[])
              AS u(hour, total, succeeded, failed, finished, durations, duration_sum, duration_max, workspaces,
                   p50_lo, p50_hi, p95_lo, p95_hi)
         ON CONFLICT (hour) DO UPDATE SET executions_total = EXCLUDED.executions_total,
           executions_succeeded = EXCLUDED.executions_succeeded, executions_failed = EXCLUDED.executions_failed,
           success_rate = EXCLUDED.success_rate, duration_ms_avg = EXCLUDED.duration_ms_avg,
           duration_ms_p50 = EXCLUDED.duration_ms_p50, duration_ms_p95 = EXCLUDED.duration_ms_p95,
           duration_ms_max = EXCLUDED.duration_ms_max, active_workspaces = EXCLUDED.active_workspaces`,
        [
          column('hour'),
          column('total'),
          column('succeeded'),
          column('failed'),
          column('finished'),
          column('durations'),
          column('duration_sum'),
          column('duration_max'),
          column('workspaces'),
          at(0),
          at(1),
          at(2),
          at(3),
        ],
      );
      await client.query(
        `INSERT INTO aggjobs.citus_view_hours (hour, groups, fingerprint)
         SELECT * FROM unnest($1::timestamptz[], $2::bigint[], $3::numeric[])
         ON CONFLICT (hour) DO UPDATE SET groups = EXCLUDED.groups, fingerprint = EXCLUDED.fingerprint`,
        [changed.map((r) => r.hour), changed.map((r) => r.groups), changed.map((r) => r.fingerprint)],
      );
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
  return { hoursRecomputed: totals.length, hoursDeleted: deleted.length, searchSteps: steps };
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
