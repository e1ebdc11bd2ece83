import type { Dimension, RollupDefinition } from './definition.ts';

/**
 * On Citus only: the rollups the seed's three materialized views are read from (citus-views.ts).
 * They are kept by the engine like every other rollup (distributed by workspace_id, co-located with
 * their sources, refreshed incrementally per node), so that a view is computed from rollup rows on
 * the workers instead of from every source row on the coordinator. Hourly: the views group by day
 * (mv_daily_user_metrics), by hour (mv_hourly_execution_stats) and by "the last 30 days from the
 * start of today" (mv_workspace_summary), which starts on an hour of the analytics zone.
 *
 * Installed by installRollups on a Citus coordinator beside the definitions it is given; not
 * installed on one server, where the views stay materialized views (materialized-views.ts).
 */

const workspace: Dimension = { column: 'workspace_id', type: 'bigint' };
const user: Dimension = { column: 'user_id', type: 'bigint' };

export const viewRollups: readonly RollupDefinition[] = [
  {
    // mv_daily_user_metrics (executions, credits) and mv_workspace_summary (everything from
    // execution_logs, among it the distinct users, which need the user in the group).
    name: 'view_user_executions_hourly',
    source: 'public.execution_logs',
    timeColumn: 'started_at',
    grain: 'hour',
    dimensions: [workspace, user],
    measures: [
      { name: 'executions', type: 'bigint', sql: 'count(*)' },
      { name: 'executions_succeeded', type: 'bigint', sql: "count(*) FILTER (WHERE status = 'success')" },
      { name: 'executions_finished', type: 'bigint', sql: "count(*) FILTER (WHERE status <> 'running')" },
      { name: 'credits_used', type: 'numeric', sql: 'sum(credits_used)' },
      { name: 'last_started_at', type: 'timestamptz', sql: 'max(started_at)' },
    ],
  },
  {
    // mv_daily_user_metrics (activity events) and mv_workspace_summary (the last event).
    name: 'view_user_activity_hourly',
    source: 'public.user_activity_events',
    timeColumn: 'occurred_at',
    grain: 'hour',
    dimensions: [workspace, user],
    measures: [
      { name: 'activity_events', type: 'bigint', sql: 'count(*)' },
      { name: 'last_occurred_at', type: 'timestamptz', sql: 'max(occurred_at)' },
    ],
  },
  {
    // mv_hourly_execution_stats, which groups by hour alone: counts and sums add up over the
    // workspaces of an hour, but its percentiles over all of them need every duration, kept here
    // per (hour, workspace) as a sorted array that the coordinator searches on the workers
    // (citus-views.ts) instead of fetching it.
    name: 'view_execution_stats_hourly',
    source: 'public.execution_logs',
    timeColumn: 'started_at',
    grain: 'hour',
    dimensions: [workspace],
    measures: [
      { name: 'executions_total', type: 'bigint', sql: 'count(*)' },
      { name: 'executions_succeeded', type: 'bigint', sql: "count(*) FILTER (WHERE status = 'success')" },
      {
        name: 'executions_failed',
        type: 'bigint',
        sql: "count(*) FILTER (WHERE status IN ('failed', 'timeout'))",
      },
      { name: 'executions_finished', type: 'bigint', sql: "count(*) FILTER (WHERE status <> 'running')" },
      { name: 'duration_count', type: 'bigint', sql: 'count(duration_ms)' },
      { name: 'duration_sum', type: 'bigint', sql: 'sum(duration_ms)' },
      { name: 'duration_max', type: 'integer', sql: 'max(duration_ms)' },
      {
        name: 'durations',
        type: 'integer[]',
        sql: 'array_agg(duration_ms ORDER BY duration_ms) FILTER (WHERE duration_ms IS NOT NULL)',
      },
    ],
  },
];

/** `definitions` with the view rollups that are not among them (by name), for a Citus install. */
export function withViewRollups(definitions: readonly RollupDefinition[]): RollupDefinition[] {
  const names = new Set(definitions.map((d) => d.name));
  return [...definitions, ...viewRollups.filter((v) => !names.has(v.name))];
}
