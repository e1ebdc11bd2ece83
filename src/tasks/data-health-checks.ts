/**
 * The health checks of the data (health-check.ts runs them): rollup freshness, change-capture lag,
 * anomalies in the source rows, rollups that need a rebuild, partitions ahead.
 */
import { oldestOpenTransaction, type Pool } from '../db/index.ts';
import { partitionCoverage, rollupsNeedingRebuild, type RollupDefinition } from '../rollups/index.ts';
import { citusCaptureLag, citusRefreshLag } from '../rollups/citus-health.ts';
import { worst, type HealthCheckResult, type HealthStatus } from './health-status.ts';

/** How far a rollup of each grain may lag: twice the period of the task that refreshes it. */
const maxLagSeconds: Record<string, number> = {
  hour: 2 * 3600,
  day: 2 * 86_400,
  week: 14 * 86_400,
  month: 62 * 86_400,
};
const CHANGE_CAPTURE_LAG_DEGRADED_S = 3600;

export async function checkFreshness(
  pool: Pool,
  rollups: ReadonlyArray<{ name: string; grain: string }>,
): Promise<HealthCheckResult> {
  const { rows } = await pool.query<{ rollup: string; lag_s: number | null }>(
    `SELECT rollup, extract(epoch FROM now() - coalesce(horizon_at, last_refresh_at))::float8 AS lag_s
     FROM aggjobs.rollup_state ORDER BY rollup`,
  );
  const stale: string[] = [];
  const data: Record<string, number | null> = {};
  const limitOf = (rollup: string): number => {
    const grain = rollups.find((r) => r.name === rollup)?.grain;
    return (grain === undefined ? undefined : maxLagSeconds[grain]) ?? 2 * 3600;
  };
  for (const row of rows) {
    if (!rollups.some((r) => r.name === row.rollup)) continue;
    data[row.rollup] = row.lag_s === null ? null : Math.round(row.lag_s);
    if (row.lag_s === null || row.lag_s > limitOf(row.rollup)) stale.push(row.rollup);
  }
  // On Citus each node commits its own part of a refresh: its own time, by the same limits, named
  // (src/rollups/citus-health.ts). A node that cannot be reached is unhealthy, as for the lag.
  const nodes = await citusRefreshLag(pool, Object.keys(data));
  const down = (nodes ?? []).filter((n) => n.error !== undefined);
  for (const n of nodes ?? []) {
    for (const [rollup, own] of Object.entries(n.lagSeconds)) {
      // A node with no state of its own for a rollup has had only refreshes through the coordinator
      // (window refreshes, a rebuild), which covered its shards: the coordinator's time counts, as
      // on one server.
      const lag = own ?? data[rollup] ?? null;
      if (lag === null || lag > limitOf(rollup)) stale.push(`${rollup} on Citus node ${n.node}`);
    }
  }
  const result = { lagSeconds: data, ...(nodes === undefined ? {} : { nodes }) };
  if (down.length > 0)
    return {
      status: 'unhealthy',
      detail: [
        ...down.map((n) => n.error ?? n.node),
        ...(stale.length > 0 ? [`stale or never refreshed: ${stale.join(', ')}`] : []),
      ].join('; '),
      data: result,
    };
  return stale.length === 0
    ? {
        status: 'healthy',
        detail:
          nodes === undefined
            ? 'every rollup refreshed within twice its interval'
            : 'every rollup refreshed within twice its interval, on every Citus node',
        data: result,
      }
    : {
        status: 'degraded',
        detail: `stale or never refreshed: ${stale.join(', ')}`,
        data: result,
      };
}

export async function checkChangeCaptureLag(pool: Pool): Promise<HealthCheckResult> {
  const oldest = await oldestOpenTransaction(pool);
  const lag = oldest?.ageSeconds ?? 0;
  const data = {
    lagSeconds: Math.round(lag),
    pid: oldest?.pid ?? null,
    applicationName: oldest?.applicationName ?? null,
  };
  // On Citus each node has its own horizon: its lag per node (src/rollups/citus-health.ts).
  const nodes = await citusCaptureLag(pool);
  if (nodes !== undefined) {
    const withNodes = { ...data, nodes };
    const down = nodes.filter((n) => n.error !== undefined);
    if (down.length > 0)
      return { status: 'unhealthy', detail: down.map((n) => n.error).join('; '), data: withNodes };
    const late = nodes.filter((n) => (n.lagSeconds ?? 0) > CHANGE_CAPTURE_LAG_DEGRADED_S);
    if (late.length > 0)
      return {
        status: 'degraded',
        detail: late
          .map(
            (n) =>
              `a transaction open for ${n.lagSeconds ?? 0} s on Citus node ${n.node} holds its horizon back`,
          )
          .join('; '),
        data: withNodes,
      };
    if (lag <= CHANGE_CAPTURE_LAG_DEGRADED_S)
      return {
        status: 'healthy',
        detail: `oldest open transaction ${Math.round(lag)} s on the coordinator, ${Math.max(...nodes.map((n) => n.lagSeconds ?? 0), 0)} s on the nodes`,
        data: withNodes,
      };
  }
  return lag > CHANGE_CAPTURE_LAG_DEGRADED_S
    ? {
        status: 'degraded',
        detail: `a transaction open for ${Math.round(lag)} s holds the horizon back`,
        data,
      }
    : { status: 'healthy', detail: `oldest open transaction ${Math.round(lag)} s`, data };
}

/**
 * Workspaces whose last complete hour departs from their usual level for that hour of the week (the
 * same local hour over the previous eight weeks): executions beyond 3 standard deviations (and at
 * least half the mean and 5 executions), or a failure rate 25 points above usual.
 */
export async function checkAnomalies(pool: Pool, zone: string): Promise<HealthCheckResult> {
  const { rows } = await pool.query<{
    workspace_id: number;
    hour: Date;
    executions: number;
    usual: number;
    failure_rate: number | null;
    usual_failure_rate: number | null;
  }>(
    `WITH last AS (
       SELECT date_trunc('hour', now(), $1) - interval '1 hour' AS h
     ), past AS (
       SELECT ((last.h AT TIME ZONE $1) - make_interval(weeks => w)) AT TIME ZONE $1 AS h
       FROM last, generate_series(1, 8) w
     ), hist AS (
       SELECT workspace_id, avg(executions_total)::float8 AS mean,
              coalesce(stddev_samp(executions_total), 0)::float8 AS sd,
              (sum(executions_failed)::float8 / nullif(sum(executions_total), 0)) AS fail_rate, count(*) AS n
       FROM analytics.execution_metrics_hourly WHERE bucket_start IN (SELECT h FROM past)
       GROUP BY 1
     ), cur AS (
       SELECT workspace_id, executions_total, executions_failed
       FROM analytics.execution_metrics_hourly, last WHERE bucket_start = last.h
     )
     SELECT hist.workspace_id, (SELECT h FROM last) AS hour,
            coalesce(cur.executions_total, 0) AS executions, round(hist.mean::numeric, 1)::float8 AS usual,
            cur.executions_failed::float8 / nullif(cur.executions_total, 0) AS failure_rate,
            hist.fail_rate AS usual_failure_rate
     FROM hist LEFT JOIN cur USING (workspace_id)
     WHERE hist.n >= 3
       AND (abs(coalesce(cur.executions_total, 0) - hist.mean) > greatest(3 * hist.sd, 0.5 * hist.mean, 5)
            OR (cur.executions_total >= 10
                AND cur.executions_failed::float8 / cur.executions_total > coalesce(hist.fail_rate, 0) + 0.25))
     ORDER BY 1 LIMIT 50`,
    [zone],
  );
  return rows.length === 0
    ? {
        status: 'healthy',
        detail: 'no workspace departs from its usual level for this hour of the week',
        data: [],
      }
    : { status: 'degraded', detail: `${rows.length} workspace(s) unusual in the last hour`, data: rows };
}

/**
 * Rollups whose rows were built under another ANALYTICS_TIMEZONE, definition or cluster: every
 * refresh of them is refused until `aggjobs rollups rebuild` runs, so their data stops moving.
 */
export async function checkRollupIdentity(
  pool: Pool,
  definitions: readonly RollupDefinition[],
  zone: string,
): Promise<HealthCheckResult> {
  const needed = await rollupsNeedingRebuild(pool, definitions, zone);
  if (needed.length === 0)
    return {
      status: 'healthy',
      detail: 'every rollup was built in this zone, with its current definition, in this cluster',
      data: [],
    };
  return {
    status: 'unhealthy',
    detail: needed
      .map(
        (n) =>
          `analytics.${n.rollup} needs a rebuild (${n.changes.map((c) => c.detail).join('; ')}): run ${n.command}`,
      )
      .join('; '),
    data: needed,
  };
}

/**
 * Sources partitioned by their time column: how far ahead they have partitions. Degraded below half
 * of PARTITION_LEAD_DAYS (cleanup_old_data, which creates them daily, has not run for days),
 * unhealthy below one day (inserts of tomorrow would fail for a missing partition) or with no
 * bounded partition at all. Undefined where no source is partitioned by time: no entry.
 */
export async function checkPartitions(
  pool: Pool,
  tables: readonly string[],
  leadDays: number,
): Promise<HealthCheckResult | undefined> {
  const coverage = await partitionCoverage(pool, tables);
  if (coverage.length === 0) return undefined;
  const problems: { status: HealthStatus; text: string }[] = [];
  for (const c of coverage) {
    if (c.coveredUntil === undefined)
      problems.push({ status: 'unhealthy', text: `${c.table} has no partition with an upper bound` });
    else if (c.daysAhead !== null && c.daysAhead < 1)
      problems.push({
        status: 'unhealthy',
        text: `${c.table} has partitions only until ${c.coveredUntil} (${c.daysAhead} days ahead): inserts after it will fail`,
      });
    else if (c.daysAhead !== null && c.daysAhead < leadDays / 2)
      problems.push({
        status: 'degraded',
        text: `${c.table} has partitions only ${c.daysAhead} days ahead (PARTITION_LEAD_DAYS=${leadDays}): cleanup_old_data, which creates them, is behind`,
      });
    if (c.detachPending.length > 0)
      problems.push({
        status: 'degraded',
        text: `${c.table}: partition(s) ${c.detachPending.join(', ')} half-detached by an interrupted cleanup (the next cleanup finishes them)`,
      });
  }
  if (problems.length === 0)
    return {
      status: 'healthy',
      detail: coverage
        .map((c) => `${c.table} ${c.daysAhead === null ? 'unbounded' : `${c.daysAhead} days ahead`}`)
        .join(', '),
      data: coverage,
    };
  return {
    status: worst(problems.map((p) => p.status)),
    detail: problems.map((p) => p.text).join('; '),
    data: coverage,
  };
}

/** Runs every check; a check that throws is reported unhealthy, never aborts the others. */
