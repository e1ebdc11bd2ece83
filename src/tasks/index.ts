export type {
  TaskDefinition,
  AnyTaskDefinition,
  TaskContext,
  BrokerProbe,
  BrokerServing,
  RunHistory,
  QueueName,
} from './task-definition.ts';
export { queueNames } from './task-definition.ts';
export {
  taskRegistry,
  taskNames,
  builtinTaskSet,
  findTask,
  timeLimitsOf,
  type TaskName,
  type TaskInput,
  type TaskResult,
  type TaskSet,
  type TimeLimits,
  type TaskPositional,
} from './task-registry.ts';
export { parseTaskArgs, granularities, type Granularity } from './task-args.ts';
export { InvalidTaskArgsError, TaskRevokedError, UnknownTaskError } from './task-errors.ts';
export { runHealthChecks, worst, type HealthReport } from './health-check.ts';
export { backfillId, cancelBackfill, type BackfillArgs } from './backfill-tasks.ts';
export {
  backfillProgress,
  backfillStatusOf,
  recordedBackfillProgress,
  type BackfillProgress,
} from './backfill-progress.ts';
export { planBackfill, windowDaysByRows, MAX_ROW_SIZED_WINDOW_DAYS } from './backfill-plan.ts';
export type { CleanupTaskResult } from './maintenance-tasks.ts';
export { bucketOf, type TaskGrain } from './time-window.ts';
