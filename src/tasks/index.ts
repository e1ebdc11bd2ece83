export type {
  TaskDefinition,
  AnyTaskDefinition,
  TaskContext,
  ArgsEnvironment,
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
  type TaskRegistry,
  type TaskName,
  type TaskInput,
  type TaskResult,
  type TaskSet,
  type TimeLimits,
  type TaskPositional,
} from './task-registry.ts';
export { parseTaskArgs, granularities, type Granularity } from './task-args.ts';
export { InvalidTaskArgsError, TaskRevokedError, UnknownTaskError } from './task-errors.ts';
export {
  runHealthChecks,
  worst,
  type HealthReport,
  type HealthStatus,
  type HealthCheckResult,
} from './health-check.ts';
export {
  backfillId,
  backfillProgress,
  cancelBackfill,
  backfillStatusOf,
  recordedBackfillProgress,
  type BackfillStatus,
  type BackfillArgs,
  type BackfillProgress,
  type BackfillResult,
} from './backfill-tasks.ts';
export type { RollupTaskResult } from './rollup-tasks.ts';
export type { ViewsTaskResult, CleanupTaskResult } from './maintenance-tasks.ts';
export {
  bucketOf,
  parseIsoInZone,
  splitIntoWindows,
  type TimeWindow,
  type TaskGrain,
} from './time-window.ts';
