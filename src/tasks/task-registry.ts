import type { Settings } from '../config/index.ts';
import { backfillAggregationsTask, backfillWindowTask } from './backfill-tasks.ts';
import { healthCheckTask } from './health-check-task.ts';
import { cleanupOldDataTask, refreshMaterializedViewsTask } from './maintenance-tasks.ts';
import { dailyRollupTask, hourlyRollupTask, monthlyRollupTask, weeklyRollupTask } from './rollup-tasks.ts';
import type { AnyTaskDefinition, TaskDefinition } from './task-definition.ts';
import { UnknownTaskError } from './task-errors.ts';

/**
 * The typed task registry: one map from task name to its definition, so its argument and result
 * types. `applyAsync`, the worker and the API are generic over it.
 */
export const taskRegistry = {
  hourly_rollup: hourlyRollupTask,
  daily_rollup: dailyRollupTask,
  weekly_rollup: weeklyRollupTask,
  monthly_rollup: monthlyRollupTask,
  refresh_materialized_views: refreshMaterializedViewsTask,
  cleanup_old_data: cleanupOldDataTask,
  health_check: healthCheckTask,
  backfill_aggregations: backfillAggregationsTask,
  backfill_window: backfillWindowTask,
} as const;

export type TaskRegistry = typeof taskRegistry;
export type TaskName = keyof TaskRegistry;
/** What a caller passes as keyword arguments of task `N`. */
export type TaskInput<N extends TaskName> =
  TaskRegistry[N] extends TaskDefinition<infer I, infer _A, infer _R> ? I : never;
/** What task `N` returns. */
export type TaskResult<N extends TaskName> =
  TaskRegistry[N] extends TaskDefinition<infer _I, infer _A, infer R> ? R : never;

export const taskNames = Object.keys(taskRegistry) as TaskName[];

/** The tasks a runtime knows: the registry plus any registered through the test seam. */
export type TaskSet = ReadonlyMap<string, AnyTaskDefinition>;

export function builtinTaskSet(extra: readonly AnyTaskDefinition[] = []): TaskSet {
  const set = new Map<string, AnyTaskDefinition>(
    Object.entries(taskRegistry).map(([name, task]) => [name, task as AnyTaskDefinition]),
  );
  for (const task of extra) set.set(task.name, task);
  return set;
}

export function findTask(tasks: TaskSet, name: string): AnyTaskDefinition {
  const task = tasks.get(name);
  if (task === undefined) throw new UnknownTaskError(name, [...tasks.keys()]);
  return task;
}

export interface TimeLimits {
  softSeconds: number;
  hardSeconds: number;
}

/**
 * A task's limits: TASK_TIME_LIMITS for it, else its declared hard limit (soft at 11/12 of it, as
 * Celery's 3300 of 3600), else TASK_SOFT_TIME_LIMIT/TASK_HARD_TIME_LIMIT.
 */
export function timeLimitsOf(
  task: Pick<AnyTaskDefinition, 'name' | 'hardLimitSeconds' | 'softLimitSeconds'>,
  settings: Pick<Settings, 'taskTimeLimits' | 'taskSoftTimeLimitSeconds' | 'taskHardTimeLimitSeconds'>,
): TimeLimits {
  const override = settings.taskTimeLimits[task.name];
  const hard = override?.hard ?? task.hardLimitSeconds ?? settings.taskHardTimeLimitSeconds;
  const declaredSoft =
    override !== undefined
      ? override.soft
      : (task.softLimitSeconds ??
        (task.hardLimitSeconds === undefined ? settings.taskSoftTimeLimitSeconds : undefined));
  const soft = Math.min(hard, declaredSoft ?? Math.round((hard * 11) / 12));
  return { softSeconds: soft, hardSeconds: hard };
}

/** The positional form of each task's arguments (Celery's `args=[…]`), in order. */
export interface TaskPositional {
  hourly_rollup: [target_hour?: string];
  daily_rollup: [target_date?: string];
  weekly_rollup: [target_week?: string];
  monthly_rollup: [target_month?: string];
  refresh_materialized_views: [];
  cleanup_old_data: [retention_days?: number];
  health_check: [];
  backfill_aggregations: [
    start_date: string,
    end_date: string,
    granularity: TaskInput<'backfill_aggregations'>['granularity'],
  ];
  backfill_window: [backfill_id: string, granularity: string, window_start: string, window_end: string];
}
