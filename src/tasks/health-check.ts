import type { Settings } from '../config/index.ts';
import { describePending, pendingMigrations, type Pool } from '../db/index.ts';
import type { RollupDefinition } from '../rollups/index.ts';
import {
  checkAnomalies,
  checkChangeCaptureLag,
  checkFreshness,
  checkPartitions,
  checkRollupIdentity,
} from './data-health-checks.ts';
import { worst, type HealthCheckResult, type HealthReport } from './health-status.ts';
import type { BrokerProbe, RunHistory } from './task-definition.ts';

export { worst, type HealthCheckResult, type HealthReport, type HealthStatus } from './health-status.ts';

/** A schedule the health check expects to see succeed: within twice its period. */
export interface ExpectedSchedule {
  task: string;
  periodSeconds: number;
}

const BACKLOG_DEGRADED = 1000;
const DB_LATENCY_DEGRADED_MS = 1000;

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
    const pending = await pendingMigrations(pool);
    if (pending.length > 0)
      return {
        status: 'unhealthy',
        detail: `connected, round trip ${ms} ms; lacks ${describePending(pending)}: run aggjobs migrate`,
        data: { latencyMs: ms, pendingMigrations: pending.length },
      };
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
