import type { Grain, Measure, RollupDefinition } from './definition.ts';

const executionMeasures: readonly Measure[] = [
  { name: 'executions_total', type: 'bigint', sql: 'count(*)' },
  { name: 'executions_succeeded', type: 'bigint', sql: "count(*) FILTER (WHERE status = 'success')" },
  { name: 'executions_failed', type: 'bigint', sql: "count(*) FILTER (WHERE status = 'failed')" },
  { name: 'executions_timed_out', type: 'bigint', sql: "count(*) FILTER (WHERE status = 'timeout')" },
  { name: 'executions_cancelled', type: 'bigint', sql: "count(*) FILTER (WHERE status = 'cancelled')" },
  { name: 'executions_running', type: 'bigint', sql: "count(*) FILTER (WHERE status = 'running')" },
  { name: 'duration_ms_sum', type: 'bigint', sql: 'sum(duration_ms)::bigint' },
  { name: 'duration_ms_max', type: 'integer', sql: 'max(duration_ms)' },
  {
    name: 'duration_ms_p50',
    type: 'double precision',
    sql: 'percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms)',
  },
  {
    name: 'duration_ms_p95',
    type: 'double precision',
    sql: 'percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)',
  },
  { name: 'credits_used', type: 'numeric', sql: 'sum(credits_used)' },
  { name: 'distinct_users', type: 'bigint', sql: 'count(DISTINCT user_id)' },
  { name: 'distinct_workflows', type: 'bigint', sql: 'count(DISTINCT workflow_id)' },
];

const activityMeasures: readonly Measure[] = [
  { name: 'events_total', type: 'bigint', sql: 'count(*)' },
  { name: 'distinct_users', type: 'bigint', sql: 'count(DISTINCT user_id)' },
  { name: 'distinct_sessions', type: 'bigint', sql: 'count(DISTINCT session_id)' },
];

const creditMeasures: readonly Measure[] = [
  { name: 'credits_consumed', type: 'numeric', sql: 'sum(credits)' },
  { name: 'transactions', type: 'bigint', sql: 'count(*)' },
  { name: 'distinct_users', type: 'bigint', sql: 'count(DISTINCT user_id)' },
];

const workspace = { column: 'workspace_id', type: 'bigint' } as const;

function executionMetrics(name: string, grain: Grain): RollupDefinition {
  return {
    name,
    source: 'public.execution_logs',
    timeColumn: 'started_at',
    grain,
    dimensions: [workspace],
    measures: executionMeasures,
  };
}

function userActivity(name: string, grain: Grain): RollupDefinition {
  return {
    name,
    source: 'public.user_activity_events',
    timeColumn: 'occurred_at',
    grain,
    dimensions: [workspace, { column: 'event_type', type: 'text' }],
    measures: activityMeasures,
  };
}

function creditConsumption(name: string, grain: Grain): RollupDefinition {
  return {
    name,
    source: 'public.credit_transactions',
    timeColumn: 'created_at',
    grain,
    dimensions: [workspace, { column: 'source', type: 'text' }],
    measures: creditMeasures,
  };
}

/** The seed's aggregation tables, and their coarser siblings. */
export const builtinRollups: readonly RollupDefinition[] = [
  executionMetrics('execution_metrics_hourly', 'hour'),
  executionMetrics('execution_metrics_daily', 'day'),
  executionMetrics('execution_metrics_weekly', 'week'),
  executionMetrics('execution_metrics_monthly', 'month'),
  userActivity('user_activity_hourly', 'hour'),
  userActivity('user_activity_daily', 'day'),
  creditConsumption('credit_consumption_hourly', 'hour'),
  creditConsumption('credit_consumption_daily', 'day'),
];
