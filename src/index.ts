/**
 * aggjobs as a library: the seed's task objects (`hourlyRollupTask.applyAsync(…)`), the rollup engine
 * (definitions, refresh, materialized views, retention) and what the
 * dashboard calls (control, queue counts, workers, schedules, run history).
 *
 * The task objects enqueue through a default runtime built from the environment on first use
 * (like Celery's app); `configureRuntime` sets one explicitly, `shutdown` closes it. `tasksFor`
 * binds the same typed objects to any runtime.
 */
import { loadSettings, settingsScrubber } from './config/index.ts';
import { connectDatabase, type Database } from './db/index.ts';
import { createLogger } from './log/index.ts';
import { createRuntime, type AsyncResult, type Runtime } from './runtime/index.ts';
import {
  taskNames,
  type TaskInput,
  type TaskName,
  type TaskPositional,
  type TaskResult,
} from './tasks/index.ts';

export interface ApplyAsyncOptions<N extends TaskName> {
  /** Positional arguments, as Celery's `args=[…]`. */
  args?: TaskPositional[N];
  /** Keyword arguments, as Celery's `kwargs={…}`. */
  kwargs?: TaskInput<N>;
  /** Seconds before the run may start. */
  countdown?: number;
}

/** A task, typed by the registry: a wrong argument is a compile error. */
export interface TaskClient<N extends TaskName> {
  readonly name: N;
  /** Validates (throws InvalidTaskArgsError), records and enqueues a run; `get({ timeout })` awaits it. */
  applyAsync(options?: ApplyAsyncOptions<N>): Promise<AsyncResult<TaskResult<N>>>;
  /** `applyAsync({ args })`, as Celery's `delay(*args)`. */
  delay(...args: TaskPositional[N]): Promise<AsyncResult<TaskResult<N>>>;
}

let defaultRuntime: Promise<{ runtime: Runtime; db: Database | undefined }> | undefined;

/** Uses `runtime` for the exported task objects (instead of one built from the environment). */
export function configureRuntime(runtime: Runtime): void {
  defaultRuntime = Promise.resolve({ runtime, db: undefined });
}

async function getDefaultRuntime(): Promise<Runtime> {
  defaultRuntime ??= (async () => {
    const settings = loadSettings();
    const logger = createLogger(settings.logLevel, {
      name: 'aggjobs client',
      scrub: settingsScrubber(settings),
    });
    const db = await connectDatabase(settings, { applicationName: 'aggjobs client' });
    const runtime = await createRuntime({ settings, pool: db.pool, databaseUrl: db.url, logger });
    return { runtime, db };
  })();
  return (await defaultRuntime).runtime;
}

/** Closes the default runtime (and the database it opened). */
export async function shutdown(): Promise<void> {
  const current = defaultRuntime;
  defaultRuntime = undefined;
  if (current === undefined) return;
  const { runtime, db } = await current;
  await runtime.close();
  await db?.close();
}

function client<N extends TaskName>(name: N, runtime: () => Promise<Runtime>): TaskClient<N> {
  const applyAsync = async (options: ApplyAsyncOptions<N> = {}): Promise<AsyncResult<TaskResult<N>>> => {
    const rt = await runtime();
    const result = await rt.enqueue(
      name,
      { args: options.args, kwargs: options.kwargs as Record<string, unknown> | undefined },
      { countdown: options.countdown },
    );
    return result as AsyncResult<TaskResult<N>>;
  };
  return { name, applyAsync, delay: (...args) => applyAsync({ args }) };
}

export type TaskClients = { [N in TaskName]: TaskClient<N> };

/** The typed task objects bound to `runtime`. */
export function tasksFor(runtime: Runtime): TaskClients {
  return Object.fromEntries(taskNames.map((n) => [n, client(n, async () => runtime)])) as TaskClients;
}

export const hourlyRollupTask = client('hourly_rollup', getDefaultRuntime);
export const dailyRollupTask = client('daily_rollup', getDefaultRuntime);
export const weeklyRollupTask = client('weekly_rollup', getDefaultRuntime);
export const monthlyRollupTask = client('monthly_rollup', getDefaultRuntime);
export const refreshMaterializedViewsTask = client('refresh_materialized_views', getDefaultRuntime);
export const cleanupOldDataTask = client('cleanup_old_data', getDefaultRuntime);
export const healthCheckTask = client('health_check', getDefaultRuntime);
export const backfillAggregationsTask = client('backfill_aggregations', getDefaultRuntime);

export {
  createRuntime,
  createControl,
  startWorker,
  startBeat,
  runEagerly,
  listRuns,
  getRun,
  listSchedules,
  nextRunTimes,
  AsyncResult,
  TaskFailedError,
  ResultTimeoutError,
  type Runtime,
  type RuntimeOptions,
  type Control,
  type QueueCounts,
  type WorkerInfo,
  type ScheduleInfo,
  type RunRecord,
  type RunState,
  type RunQuery,
  type WorkerHandle,
  type BeatHandle,
} from './runtime/index.ts';
export {
  InvalidTaskArgsError,
  taskRegistry,
  type TaskName,
  type TaskInput,
  type TaskResult,
  type HealthReport,
} from './tasks/index.ts';
export { loadSettings, parseSettings, type Settings } from './config/index.ts';
export { connectDatabase, createPool, migrate, type Database, type Pool } from './db/index.ts';
export {
  builtinRollups,
  installRollups,
  prepareDatabase,
  refreshRollup,
  rebuildRollup,
  RollupRebuildRequiredError,
  createMaterializedViews,
  refreshMaterializedViews,
  cleanupOldData,
  type RollupDefinition,
  type Grain,
  type Dimension,
  type Measure,
  type RefreshResult,
  type RefreshMode,
  type RebuildResult,
  type ViewRefreshResult,
  type CleanupResult,
} from './rollups/index.ts';
export { seedDemoData, runTraffic, type SeedOptions } from './workload/index.ts';
