import { randomUUID } from 'node:crypto';
import type { JobsOptions } from 'bullmq';
import type { Settings } from '../config/index.ts';
import type { Pool } from '../db/index.ts';
import type { Logger } from '../log/index.ts';
import {
  builtinTaskSet,
  findTask,
  parseTaskArgs,
  type AnyTaskDefinition,
  type TaskSet,
} from '../tasks/index.ts';
import { AsyncResult } from './async-result.ts';
import { createBroker, type Broker } from './broker.ts';
import { createResultBackend, type ResultBackend } from './result-backend.ts';
import { recordEnqueueFailure, recordQueued } from './run-log.ts';

export interface RuntimeOptions {
  settings: Settings;
  pool: Pool;
  /** The database's connection string: task threads open their own sessions with it. */
  databaseUrl: string;
  logger: Logger;
  /**
   * Broker namespace: the Redis key prefix or the PostgreSQL schema of the BullMQ backend. Defaults
   * to BROKER_KEY_PREFIX on Redis and `bullmq` on PostgreSQL; tests use a unique one each.
   */
  namespace?: string;
  /**
   * Modules exporting `tasks: AnyTaskDefinition[]`, registered besides the built-in tasks, in this
   * process and in every task thread (the seam through which tests add tasks).
   */
  taskModules?: readonly string[];
  /** The clock of argument validation and of the beat (a seam for tests). */
  now?: () => Date;
}

export interface EnqueueOptions {
  /** The run id (BullMQ job id); default a random UUID. Must not contain ':'. */
  runId?: string;
  /** The run this one belongs to (its parent_id): listed among that run's children. */
  parentId?: string;
  /** Seconds before the run may start (Celery's countdown). */
  countdown?: number;
  /** The run this one retries (its retry_of): the dashboard links both ways. */
  retryOf?: string;
}

/** Everything a process needs to enqueue and run tasks: settings, database, broker, tasks, clock. */
export interface Runtime {
  readonly settings: Settings;
  readonly pool: Pool;
  readonly databaseUrl: string;
  readonly logger: Logger;
  readonly broker: Broker;
  readonly tasks: TaskSet;
  readonly taskModules: readonly string[];
  readonly resultBackend: ResultBackend | undefined;
  now(): Date;
  /** Validates (throws InvalidTaskArgsError at once), records the run as queued, and enqueues it. */
  enqueue(
    task: string,
    input: { args?: readonly unknown[]; kwargs?: Record<string, unknown> },
    options?: EnqueueOptions,
  ): Promise<AsyncResult>;
  /** Validated arguments for `task`, as the run will get them. */
  validate(
    task: string,
    input: { args?: readonly unknown[]; kwargs?: Record<string, unknown> },
  ): Record<string, unknown>;
  /**
   * Adds the job of a run already recorded (the beat records it with its slot; the reaper sends a
   * lost job again), due in `delayMs`.
   */
  addJob(
    task: AnyTaskDefinition,
    args: Record<string, unknown>,
    runId: string,
    delayMs?: number,
  ): Promise<void>;
  close(): Promise<void>;
}

export async function loadTaskModules(urls: readonly string[]): Promise<AnyTaskDefinition[]> {
  const tasks: AnyTaskDefinition[] = [];
  for (const url of urls) {
    const mod = (await import(url)) as { tasks?: AnyTaskDefinition[] };
    tasks.push(...(mod.tasks ?? []));
  }
  return tasks;
}

export async function createRuntime(options: RuntimeOptions): Promise<Runtime> {
  const { settings, pool, logger } = options;
  const taskModules = [...(options.taskModules ?? [])];
  const tasks = builtinTaskSet(await loadTaskModules(taskModules));
  const broker = await createBroker({
    brokerUrl: settings.brokerUrl,
    databaseUrl: options.databaseUrl,
    namespace: options.namespace ?? (settings.brokerUrl === undefined ? 'bullmq' : settings.brokerKeyPrefix),
    onWarning: (m) => logger.warn(m),
  });
  const resultBackend =
    settings.resultBackendUrl === undefined
      ? undefined
      : await createResultBackend(settings.resultBackendUrl, settings.resultExpiresSeconds);
  const now = options.now ?? (() => new Date());

  // Every task's job options: retries with exponential backoff, retention of finished jobs.
  const jobOptions: JobsOptions = {
    attempts: settings.taskMaxRetries + 1,
    // The worker's strategy: exponential from TASK_RETRY_BACKOFF_MS, with jitter (errors.ts).
    backoff: { type: 'aggjobs', delay: settings.taskRetryBackoffMs },
    // The run history lives in aggjobs.task_runs; the broker keeps finished jobs only briefly.
    removeOnComplete: { age: 3600, count: 1000 },
    removeOnFail: { age: 7 * 86_400, count: 10_000 },
  };

  const validate: Runtime['validate'] = (name, input) =>
    parseTaskArgs(findTask(tasks, name), input, { settings, now: now() });

  const addJob: Runtime['addJob'] = async (task, args, runId, delayMs = 0) => {
    const delay = delayMs > 0 ? { delay: delayMs } : {};
    await broker.queue(task.queue).add(task.name, { args }, { ...jobOptions, ...delay, jobId: runId });
  };

  const runtime: Runtime = {
    settings,
    pool,
    databaseUrl: options.databaseUrl,
    logger,
    broker,
    tasks,
    taskModules,
    resultBackend,
    now,
    validate,
    addJob,
    async enqueue(name, input, enqueueOptions = {}) {
      const task = findTask(tasks, name);
      const args = parseTaskArgs(task, input, { settings, now: now() });
      const runId = enqueueOptions.runId ?? randomUUID();
      const delay = enqueueOptions.countdown === undefined ? {} : { delay: enqueueOptions.countdown * 1000 };
      try {
        // Expanded first: an expansion that refuses its arguments leaves nothing written.
        const children = task.expand === undefined ? undefined : await task.expand({ pool, settings }, args);
        await recordQueued(pool, {
          id: runId,
          task: task.name,
          args,
          queue: task.queue,
          parentId: enqueueOptions.parentId,
          retryOf: enqueueOptions.retryOf,
          delaySeconds: enqueueOptions.countdown,
        });
        if (children === undefined) {
          await broker.queue(task.queue).add(task.name, { args }, { ...jobOptions, ...delay, jobId: runId });
        } else {
          const childJobs = [];
          for (const child of children) {
            const childTask = findTask(tasks, child.task);
            const childId = randomUUID();
            await recordQueued(pool, {
              id: childId,
              task: childTask.name,
              args: child.args,
              queue: childTask.queue,
              parentId: runId,
            });
            childJobs.push({
              name: childTask.name,
              queueName: childTask.queue,
              data: { args: child.args },
              opts: { ...jobOptions, jobId: childId, ignoreDependencyOnFailure: true },
            });
          }
          await broker.flowProducer().add({
            name: task.name,
            queueName: task.queue,
            data: { args },
            opts: { ...jobOptions, ...delay, jobId: runId },
            children: childJobs,
          });
        }
      } catch (error) {
        await recordEnqueueFailure(
          pool,
          runId,
          `could not enqueue: ${error instanceof Error ? error.message : String(error)}`,
        ).catch(() => undefined);
        throw error;
      }
      logger.debug({ task: task.name, runId }, `enqueued ${task.name}`);
      return new AsyncResult(runId, task.name, pool);
    },
    async close() {
      await broker.close();
      await resultBackend?.close();
    },
  };
  return runtime;
}
