import {
  builtinRollups,
  pruneChangeLog,
  refreshRollup,
  type RefreshMode,
  type RefreshResult,
  type RollupDefinition,
} from '../rollups/index.ts';
import { rollupArgs, type TargetArgs } from './task-args.ts';
import type { TaskContext, TaskDefinition } from './task-definition.ts';
import { bucketOf, parseIsoInZone, type TaskGrain, type TimeWindow } from './time-window.ts';

export interface RollupTaskResult {
  grain: TaskGrain;
  mode: 'incremental' | 'window';
  /** Window mode: the buckets recomputed. */
  window?: { start: string; end: string };
  rollups: RefreshResult[];
  /**
   * A retried backfill window: the rollups its run's earlier attempt refreshed (committed), not
   * refreshed again.
   */
  resumed?: string[];
  /** Change-log entries forgotten after the refreshes (incremental mode). */
  changeLogPruned: number;
  durationMs: number;
}

export function rollupsOfGrain(grain: TaskGrain): RollupDefinition[] {
  return builtinRollups.filter((r) => r.grain === grain);
}

/**
 * Refreshes every built-in rollup of `grain`: incrementally (what changed since the last run,
 * including late, updated and deleted rows), or the buckets of one window. Then prunes the change
 * log of their sources. A backfill window passes `skip` (the rollups its run refreshed before a
 * retry) and `refreshed`, told each rollup's name once its refresh has committed.
 */
export async function refreshGrain(
  ctx: TaskContext,
  grain: TaskGrain,
  window: TimeWindow | undefined,
  progress: { skip?: ReadonlySet<string>; refreshed?: (rollup: string) => Promise<void> } = {},
): Promise<RollupTaskResult> {
  const started = performance.now();
  const mode: RefreshMode =
    window === undefined ? { kind: 'incremental' } : { kind: 'window', start: window.start, end: window.end };
  const rollups: RefreshResult[] = [];
  const resumed: string[] = [];
  for (const def of rollupsOfGrain(grain)) {
    if (progress.skip?.has(def.name) === true) {
      resumed.push(def.name);
      continue;
    }
    ctx.signal.throwIfAborted();
    const result = await refreshRollup(ctx.pool, def, {
      timezone: ctx.settings.analyticsTimezone,
      mode,
      statementTimeoutMs: ctx.settings.statementTimeoutMs,
      lockTimeoutMs: ctx.settings.lockTimeoutMs,
      signal: ctx.signal,
    });
    ctx.logger.info({ ...result }, `refreshed ${def.name}`);
    if (result.partitionCapture !== undefined && 'error' in result.partitionCapture)
      ctx.logger.warn(
        { rollup: def.name, partitions: result.partitions },
        `${def.source}: partitions without change capture are recomputed by every run until it is on; putting it on failed: ${result.partitionCapture.error}`,
      );
    rollups.push(result);
    await progress.refreshed?.(def.name);
  }
  let changeLogPruned = 0;
  if (window === undefined) {
    for (const source of new Set(rollupsOfGrain(grain).map((r) => r.source))) {
      changeLogPruned += await pruneChangeLog(ctx.pool, source);
    }
  }
  return {
    grain,
    mode: window === undefined ? 'incremental' : 'window',
    ...(window === undefined
      ? {}
      : { window: { start: window.start.toISOString(), end: window.end.toISOString() } }),
    rollups,
    ...(resumed.length > 0 ? { resumed } : {}),
    changeLogPruned,
    durationMs: Math.round(performance.now() - started),
  };
}

function rollupTask<F extends string>(options: {
  name: string;
  field: F;
  example: string;
  grain: TaskGrain;
  cron: string;
  periodSeconds: number;
  hardLimitSeconds: number;
  description: string;
  enabled: (s: TaskContext['settings']) => boolean;
}): TaskDefinition<TargetArgs<F>, TargetArgs<F>, RollupTaskResult> {
  return {
    name: options.name,
    queue: 'aggregation',
    description: options.description,
    positional: [options.field],
    schema: rollupArgs(options.field, options.example),
    hardLimitSeconds: options.hardLimitSeconds,
    schedule: { cron: options.cron, periodSeconds: options.periodSeconds, enabled: options.enabled },
    async run(ctx, args) {
      const target = args[options.field];
      const window =
        target === undefined
          ? undefined
          : bucketOf(
              options.grain,
              parseIsoInZone(target, ctx.settings.analyticsTimezone) ?? ctx.now(),
              ctx.settings.analyticsTimezone,
            );
      return await refreshGrain(ctx, options.grain, window);
    },
  };
}

export const hourlyRollupTask = rollupTask({
  name: 'hourly_rollup',
  field: 'target_hour',
  example: '2025-01-09T14:00:00',
  grain: 'hour',
  cron: '5 * * * *',
  periodSeconds: 3600,
  hardLimitSeconds: 3600,
  description: "aggregate the last hour's data (every hour at :05)",
  enabled: (s) => s.hourlyRollupEnabled,
});

export const dailyRollupTask = rollupTask({
  name: 'daily_rollup',
  field: 'target_date',
  example: '2025-01-09',
  grain: 'day',
  cron: '0 1 * * *',
  periodSeconds: 86_400,
  hardLimitSeconds: 7200,
  description: "aggregate the previous day's data (daily at 01:00)",
  enabled: (s) => s.dailyRollupEnabled,
});

export const weeklyRollupTask = rollupTask({
  name: 'weekly_rollup',
  field: 'target_week',
  example: '2025-01-06',
  grain: 'week',
  cron: '0 2 * * 1',
  periodSeconds: 604_800,
  hardLimitSeconds: 14_400,
  description: "aggregate the previous week's data (Monday at 02:00)",
  enabled: (s) => s.weeklyRollupEnabled,
});

export const monthlyRollupTask = rollupTask({
  name: 'monthly_rollup',
  field: 'target_month',
  example: '2025-01-01',
  grain: 'month',
  cron: '0 4 1 * *',
  periodSeconds: 2_678_400,
  hardLimitSeconds: 14_400,
  description: "aggregate the previous month's data (the 1st at 04:00)",
  enabled: (s) => s.monthlyRollupEnabled,
});
