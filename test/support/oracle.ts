import type { Queryable } from '../../src/db/index.ts';

/**
 * The oracle: each built-in rollup written as a plain GROUP BY over all source rows, by hand, as a
 * user would check it — independent of the engine's generated SQL. `$1` is the time zone.
 */
const executionColumns = `
  count(*) AS executions_total,
  count(*) FILTER (WHERE status = 'success') AS executions_succeeded,
  count(*) FILTER (WHERE status = 'failed') AS executions_failed,
  count(*) FILTER (WHERE status = 'timeout') AS executions_timed_out,
  count(*) FILTER (WHERE status = 'cancelled') AS executions_cancelled,
  count(*) FILTER (WHERE status = 'running') AS executions_running,
  sum(duration_ms)::bigint AS duration_ms_sum,
  max(duration_ms) AS duration_ms_max,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS duration_ms_p50,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS duration_ms_p95,
  sum(credits_used) AS credits_used,
  count(DISTINCT user_id) AS distinct_users,
  count(DISTINCT workflow_id) AS distinct_workflows`;

function executions(grain: string): string {
  return `SELECT date_trunc('${grain}', started_at, $1) AS bucket_start, workspace_id, ${executionColumns}
          FROM public.execution_logs GROUP BY 1, 2`;
}

function activity(grain: string): string {
  return `SELECT date_trunc('${grain}', occurred_at, $1) AS bucket_start, workspace_id, event_type,
            count(*) AS events_total, count(DISTINCT user_id) AS distinct_users, count(DISTINCT session_id) AS distinct_sessions
          FROM public.user_activity_events GROUP BY 1, 2, 3`;
}

function credits(grain: string): string {
  return `SELECT date_trunc('${grain}', created_at, $1) AS bucket_start, workspace_id, source,
            sum(credits) AS credits_consumed, count(*) AS transactions, count(DISTINCT user_id) AS distinct_users
          FROM public.credit_transactions GROUP BY 1, 2, 3`;
}

export const oracleQueries: Record<string, string> = {
  execution_metrics_hourly: executions('hour'),
  execution_metrics_daily: executions('day'),
  execution_metrics_weekly: executions('week'),
  execution_metrics_monthly: executions('month'),
  user_activity_hourly: activity('hour'),
  user_activity_daily: activity('day'),
  credit_consumption_hourly: credits('hour'),
  credit_consumption_daily: credits('day'),
};

export interface OracleMismatch {
  table: string;
  /** Rows the oracle has and the rollup lacks (or has different), and the reverse. */
  missing: unknown[];
  extra: unknown[];
}

/** Buckets that start before it are frozen: one time for all rollups, or one per rollup (absent: none). */
export type FrozenBefore = Date | Readonly<Record<string, Date>>;

/**
 * The retention rule (README "Retention"), written out by hand for the built-in rollups: what a
 * cleanup with these cutoffs froze. Rollups of the cleaned sources (execution logs, activity events)
 * are frozen before the source cutoff; hourly rollups also before the rollup cutoff (they expire,
 * whatever their source); credit transactions are a ledger that is kept, so the daily credit
 * rollup has no frozen bucket.
 */
export function frozenAfterCleanup(cutoffs: {
  sourceCutoff: string;
  rollupCutoff: string;
}): Record<string, Date> {
  const source = new Date(cutoffs.sourceCutoff);
  const rollup = new Date(cutoffs.rollupCutoff);
  const later = (a: Date, b: Date): Date => (a > b ? a : b);
  return {
    execution_metrics_hourly: later(source, rollup),
    execution_metrics_daily: source,
    execution_metrics_weekly: source,
    execution_metrics_monthly: source,
    user_activity_hourly: later(source, rollup),
    user_activity_daily: source,
    credit_consumption_hourly: rollup,
  };
}

/**
 * Compares every row of every built-in rollup with the oracle; buckets that start before
 * `frozenBefore` (the retention watermarks) are left out on both sides. Returns the differences
 * (empty: equal).
 */
export async function compareWithOracle(
  db: Queryable,
  timezone: string,
  options: { frozenBefore?: FrozenBefore; tables?: string[]; oracles?: Record<string, string> } = {},
): Promise<OracleMismatch[]> {
  const mismatches: OracleMismatch[] = [];
  // `oracles`: rollups a test installs beside the built-in ones (same $1), compared too.
  for (const [table, oracle] of Object.entries({ ...oracleQueries, ...options.oracles })) {
    if (options.tables !== undefined && !options.tables.includes(table)) continue;
    const frozen = options.frozenBefore;
    const cutoff: Date | string = (frozen instanceof Date ? frozen : frozen?.[table]) ?? '-infinity';
    // Every rollup column but updated_at and the engine's state (delta-state.ts), compared as exact
    // values (numeric 1.50 = 1.5).
    const columnsResult = await db.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns
       WHERE table_schema = 'analytics' AND table_name = $1 AND column_name <> 'updated_at'
         AND column_name NOT LIKE 'aggjobs\\_%' ORDER BY ordinal_position`,
      [table],
    );
    const cols = columnsResult.rows.map((r) => `"${r.column_name}"`).join(', ');
    const { rows } = await db.query<{ side: string; row: unknown }>(
      `WITH o AS (SELECT ${cols} FROM (${oracle}) x WHERE bucket_start >= $2),
            a AS (SELECT ${cols} FROM analytics.${table} WHERE bucket_start >= $2)
       SELECT 'missing' AS side, to_jsonb(d) AS row FROM (SELECT * FROM o EXCEPT ALL SELECT * FROM a) d
       UNION ALL
       SELECT 'extra', to_jsonb(d) FROM (SELECT * FROM a EXCEPT ALL SELECT * FROM o) d`,
      [timezone, cutoff],
    );
    if (rows.length > 0) {
      mismatches.push({
        table,
        missing: rows.filter((r) => r.side === 'missing').map((r) => r.row),
        extra: rows.filter((r) => r.side === 'extra').map((r) => r.row),
      });
    }
  }
  return mismatches;
}

/** Throws with the first differences when any rollup differs from the oracle. */
export async function assertRollupsMatchOracle(
  db: Queryable,
  timezone: string,
  options: { frozenBefore?: FrozenBefore; tables?: string[]; oracles?: Record<string, string> } = {},
): Promise<void> {
  const mismatches = await compareWithOracle(db, timezone, options);
  if (mismatches.length > 0) {
    const detail = mismatches
      .map(
        (m) =>
          `${m.table}: missing ${JSON.stringify(m.missing.slice(0, 3))} extra ${JSON.stringify(m.extra.slice(0, 3))}`,
      )
      .join('\n');
    throw new Error(`rollups differ from the oracle:\n${detail}`);
  }
}
