import {
  builtinRollups,
  cleanupOldData,
  defaultSources,
  ensureFuturePartitions,
  pruneUnreadChangeLog,
  pruneSeenTruncations,
  refreshMaterializedViews,
  type EnsuredPartitions,
  type CleanupResult,
  type ViewRefreshResult,
} from '../rollups/index.ts';
import { citusInstalled } from '../rollups/citus-install.ts';
import { withViewRollups } from '../rollups/citus-view-rollups.ts';
import { cleanupArgs, noArgs } from './task-args.ts';
import type { TaskDefinition } from './task-definition.ts';

export interface ViewsTaskResult {
  views: ViewRefreshResult[];
  refreshed: number;
  skipped: number;
  durationMs: number;
}

export const refreshMaterializedViewsTask: TaskDefinition<
  Record<string, never>,
  Record<string, never>,
  ViewsTaskResult
> = {
  name: 'refresh_materialized_views',
  queue: 'maintenance',
  description: 'refresh the materialized views whose inputs changed (every 15 minutes)',
  positional: [],
  schema: noArgs,
  hardLimitSeconds: 900,
  schedule: { cron: '*/15 * * * *', periodSeconds: 900, enabled: () => true },
  async run(ctx) {
    const started = performance.now();
    const views = await refreshMaterializedViews(ctx.pool, {
      timezone: ctx.settings.analyticsTimezone,
      statementTimeoutMs: ctx.settings.statementTimeoutMs,
      lockTimeoutMs: ctx.settings.lockTimeoutMs,
      signal: ctx.signal,
    });
    ctx.signal.throwIfAborted();
    return {
      views,
      refreshed: views.filter((v) => v.status === 'refreshed').length,
      skipped: views.filter((v) => v.status === 'skipped').length,
      durationMs: Math.round(performance.now() - started),
    };
  },
};

export interface CleanupTaskResult extends CleanupResult {
  /** Rows of aggjobs.task_runs (and the beat's slot ledger) older than RUN_HISTORY_DAYS removed. */
  runHistoryPruned: number;
  /** Per source partitioned by time: the partitions created to reach PARTITION_LEAD_DAYS ahead. */
  partitionsAhead: EnsuredPartitions[];
  /** Change-log entries of tables no rollup reads (partitions detached from a source) removed. */
  changeLogUnreadPruned: number;
}

export const cleanupOldDataTask: TaskDefinition<
  { retention_days?: number },
  { retention_days: number },
  CleanupTaskResult
> = {
  name: 'cleanup_old_data',
  queue: 'maintenance',
  description:
    'create partitions ahead, drop partitions or delete source rows past retention, expire hourly rollups, prune run history (daily at 03:00)',
  positional: ['retention_days'],
  schema: cleanupArgs,
  hardLimitSeconds: 7200,
  schedule: { cron: '0 3 * * *', periodSeconds: 86_400, enabled: () => true },
  async run(ctx, args) {
    // First the partitions ahead (a source partitioned by time; none otherwise), so that a failure
    // of retention below never leaves inserts without a partition.
    const partitionsAhead = await ensureFuturePartitions(
      ctx.pool,
      [...new Set(builtinRollups.map((r) => r.source))],
      { leadDays: ctx.settings.partitionLeadDays, signal: ctx.signal },
    );
    // On Citus the materialized views are read from rollups of their own (citus-views.ts): hourly,
    // they expire as the hourly rollups do.
    const rollups = (await citusInstalled(ctx.pool)) ? withViewRollups(builtinRollups) : builtinRollups;
    const result = await cleanupOldData(
      ctx.pool,
      rollups,
      {
        retentionDays: args.retention_days,
        sources: defaultSources,
        rollupRetentionFactor: 2,
        batchSize: ctx.settings.cleanupBatchSize,
        // A refresh in progress ends within its lock wait and its statement timeout (and a few
        // short statements around them).
        refreshWaitMs: ctx.settings.lockTimeoutMs + ctx.settings.statementTimeoutMs + 60_000,
      },
      { signal: ctx.signal },
    );
    const runHistoryPruned = await ctx.runs.prune(ctx.settings.runHistoryDays);
    // The backfill's own table (backfill-tasks.ts) ages with the run history.
    await ctx.pool.query(
      `DELETE FROM aggjobs.backfill_windows WHERE updated_at < now() - make_interval(days => $1)`,
      [ctx.settings.runHistoryDays],
    );
    const changeLogUnreadPruned = await pruneUnreadChangeLog(ctx.pool);
    const truncationsPruned = await pruneSeenTruncations(ctx.pool);
    return { ...result, runHistoryPruned, partitionsAhead, changeLogUnreadPruned, truncationsPruned };
  },
};
