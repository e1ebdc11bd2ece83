import type { Settings } from '../config/index.ts';
import { oldestOpenTransaction, type Pool } from '../db/index.ts';
import { partitionCoverage, rollupsNeedingRebuild, type RollupDefinition } from '../rollups/index.ts';
import { citusCaptureLag, citusRefreshLag } from '../rollups/citus-health.ts';
import type { BrokerProbe, RunHistory } from './task-definition.ts';

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';

export interface HealthCheckResult {
  status: HealthStatus;
  detail: string;
  data?: unknown;
}

/** The seed's "dictionary with health status": one entry per check and the worst of them. */
export interface HealthReport {
  status: HealthStatus;
  checkedAt: string;
  checks: Record<string, HealthCheckResult>;
}

/** A schedule the health check expects to see succeed: within twice its period. */
export interface ExpectedSchedule {
  task: string;
  periodSeconds: number;
}

/** How far a rollup of each grain may lag: twice the period of the task that refreshes it. */
const maxLagSeconds: Record<string, number> = {
  hour: 2 * 3600,
  day: 2 * 86_400,
  week: 14 * 86_400,
  month: 62 * 86_400,
};
const BACKLOG_DEGRADED = 1000;
const CHANGE_CAPTURE_LAG_DEGRADED_S = 3600;
const DB_LATENCY_DEGRADED_MS = 1000;

const rank: Record<HealthStatus, number> = { healthy: 0, degraded: 1, unhealthy: 2 };

export function worst(statuses: Iterable<HealthStatus>): HealthStatus {
  let w: HealthStatus = 'healthy';
  for (const s of statuses) if (rank[s] > rank[w]) w = s;
  return w;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const value = await fn();
  return [value, Math.round(performance.now() - started)];
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function checkDatabase(pool: Pool): Promise<HealthCheckResult> {
  try {
    const [, ms] = await timed(() => pool.query('SELECT 1'));
    return {
      status: ms > DB_LATENCY_DEGRADED_MS ? 'degraded' : 'healthy',
      detail: `connected, round trip ${ms} ms`,
      data: { latencyMs: ms },
    };
  } catch (error) {
    return { status: 'unhealthy', detail: `cannot query the database: ${message(error)}` };
  }
}

async function checkBroker(broker: BrokerProbe): Promise<HealthCheckResult> {
  try {
    const ms = await broker.ping();
    const serving = await broker.serving?.();
    const failovers = serving?.failovers ?? [];
    const last = failovers.at(-1);
    return {
      status: 'healthy',
      detail:
        `${broker.kind} broker reachable, round trip ${ms} ms` +
        (serving === undefined ? '' : `, served by ${serving.node}`) +
        (last === undefined
          ? ''
          : `; failover seen at ${last.seenAt.toISOString()}: ${last.from} -> ${last.to}`),
      data: {
        latencyMs: ms,
        ...(serving === undefined ? {} : { node: serving.node, failovers: failovers.length }),
      },
    };
  } catch (error) {
    return { status: 'unhealthy', detail: `${broker.kind} broker unreachable: ${message(error)}` };
  }
}

async function checkRecentActivity(
  runs: RunHistory,
  expected: readonly ExpectedSchedule[],
): Promise<HealthCheckResult> {
  const history = await runs.lastSuccesses(expected.map((e) => e.task));
  const late: string[] = [];
  const data: Record<string, { lastSuccess: string | null; dueWithinSeconds: number }> = {};
  for (const e of expected) {
    const allowed = 2 * e.periodSeconds * 1000;
    const last = history.last.get(e.task) ?? null;
    data[e.task] = { lastSuccess: last?.toISOString() ?? null, dueWithinSeconds: 2 * e.periodSeconds };
    // Never succeeded: late only once the system has been running for longer than the allowance.
    const since = last ?? history.firstRun;
    if (since !== null && history.now.getTime() - since.getTime() > allowed) late.push(e.task);
  }
  return late.length === 0
    ? { status: 'healthy', detail: 'every enabled schedule succeeded within twice its interval', data }
    : { status: 'degraded', detail: `no recent success of ${late.join(', ')}`, data };
}

async function checkFreshness(
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

async function checkBacklog(broker: BrokerProbe): Promise<HealthCheckResult> {
  try {
    const counts = await broker.counts();
    const big = Object.entries(counts).filter(([, c]) => c.waiting > BACKLOG_DEGRADED);
    return big.length === 0
      ? { status: 'healthy', detail: `under ${BACKLOG_DEGRADED} waiting on every queue`, data: counts }
      : {
          status: 'degraded',
          detail: `backlog over ${BACKLOG_DEGRADED} on ${big.map(([q]) => q).join(', ')}`,
          data: counts,
        };
  } catch (error) {
    return { status: 'unhealthy', detail: `cannot read queue counts: ${message(error)}` };
  }
}

/** Failures of the last hour that no later run of the same task and arguments has made good. */
async function checkFailures(runs: RunHistory): Promise<HealthCheckResult> {
  const rows = await runs.unfixedFailures();
  const total = rows.reduce((s, r) => s + r.n, 0);
  return total === 0
    ? { status: 'healthy', detail: 'no failed runs in the last hour that a later run did not fix', data: {} }
    : {
        status: 'degraded',
        detail: `${total} failed or timed-out run(s) in the last hour, not fixed by a later run`,
        data: Object.fromEntries(rows.map((r) => [r.task, r.n])),
      };
}

/** A worker is live while its heartbeat is younger than this (three missed heartbeats). */
const WORKER_LIVE_SECONDS = 15;
/** Due work older than this with no live worker on its queue makes the system unhealthy. */
const UNSERVED_AFTER_SECONDS = 60;
/** A running run whose owner stopped renewing its lease this long ago is stuck (the reaper is late). */
const STUCK_AFTER_SECONDS = 300;

/**
 * Runs nobody will take: due work on a queue that no live worker serves (unhealthy), and running
 * runs whose worker stopped renewing their lease long ago (degraded: the reaper of a live worker
 * settles them).
 */
async function checkRunOwnership(runs: RunHistory): Promise<HealthCheckResult> {
  const rows = await runs.queueService({
    liveSeconds: WORKER_LIVE_SECONDS,
    dueSeconds: UNSERVED_AFTER_SECONDS,
    stuckSeconds: STUCK_AFTER_SECONDS,
  });
  const unserved = rows.filter((r) => r.due > 0 && r.liveWorkers === 0);
  const stuck = rows.filter((r) => r.stuck > 0);
  const data = Object.fromEntries(
    rows.map((r) => [r.queue, { due: r.due, stuck: r.stuck, liveWorkers: r.liveWorkers }]),
  );
  if (unserved.length > 0) {
    return {
      status: 'unhealthy',
      detail: unserved
        .map(
          (r) =>
            `${r.due} run(s) due on ${r.queue} and no live worker serves it: start one with -Q ${r.queue}`,
        )
        .join('; '),
      data,
    };
  }
  if (stuck.length > 0) {
    const n = stuck.reduce((s, r) => s + r.stuck, 0);
    return {
      status: 'degraded',
      detail: `${n} running run(s) whose worker stopped over ${STUCK_AFTER_SECONDS} s ago and that no reaper has settled`,
      data,
    };
  }
  return { status: 'healthy', detail: 'every due run has a live worker; no run is stuck', data };
}

async function checkChangeCaptureLag(pool: Pool): Promise<HealthCheckResult> {
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
async function checkAnomalies(pool: Pool, zone: string): Promise<HealthCheckResult> {
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
async function checkRollupIdentity(
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
async function checkPartitions(
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
export async function runHealthChecks(options: {
  pool: Pool;
  settings: Pick<Settings, 'analyticsTimezone'>;
  broker: BrokerProbe | undefined;
  /** The run history (runtime/run-history.ts): recent successes, failures, run ownership. */
  runs: RunHistory;
  expected: readonly ExpectedSchedule[];
  /** The rollups whose freshness matters: those of enabled grains. */
  rollups: ReadonlyArray<{ name: string; grain: string }>;
  /** Definitions whose build identity is checked (rollup_identity); none: not checked. */
  definitions?: readonly RollupDefinition[];
  /** Source tables whose partitions ahead are checked (`partitions`, where any is partitioned by time). */
  partitions?: { tables: readonly string[]; leadDays: number };
}): Promise<HealthReport> {
  const guard = async (fn: () => Promise<HealthCheckResult>): Promise<HealthCheckResult> => {
    try {
      return await fn();
    } catch (error) {
      return { status: 'unhealthy', detail: `check failed: ${message(error)}` };
    }
  };
  const database = await guard(() => checkDatabase(options.pool));
  const checks: Record<string, HealthCheckResult> = { database };
  // Without a broker (an eager run) the broker and its backlog are not checked, and the report
  // does not claim they are healthy: the two checks are left out.
  const broker = options.broker;
  if (broker !== undefined) checks.broker = await guard(() => checkBroker(broker));
  if (database.status !== 'unhealthy') {
    checks.recent_activity = await guard(() => checkRecentActivity(options.runs, options.expected));
    checks.data_freshness = await guard(() => checkFreshness(options.pool, options.rollups));
    checks.failures = await guard(() => checkFailures(options.runs));
    checks.run_ownership = await guard(() => checkRunOwnership(options.runs));
    checks.change_capture_lag = await guard(() => checkChangeCaptureLag(options.pool));
    checks.anomalies = await guard(() => checkAnomalies(options.pool, options.settings.analyticsTimezone));
    const definitions = options.definitions;
    if (definitions !== undefined)
      checks.rollup_identity = await guard(() =>
        checkRollupIdentity(options.pool, definitions, options.settings.analyticsTimezone),
      );
    const partitions = options.partitions;
    if (partitions !== undefined) {
      const check = await guard(
        async () =>
          (await checkPartitions(options.pool, partitions.tables, partitions.leadDays)) ?? {
            status: 'healthy',
            detail: '',
          },
      );
      if (check.detail !== '') checks.partitions = check;
    }
  }
  if (broker !== undefined) checks.queue_backlog = await guard(() => checkBacklog(broker));
  return {
    status: worst(Object.values(checks).map((c) => c.status)),
    checkedAt: new Date().toISOString(),
    checks,
  };
}
