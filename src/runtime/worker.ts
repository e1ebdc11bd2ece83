import { hostname } from 'node:os';
import { UnrecoverableError, type Job } from 'bullmq';
import { timeLimitsOf, type AnyTaskDefinition, type QueueName } from '../tasks/index.ts';
import type { BrokerWorker, JobData } from './broker.ts';
import { listenControl, type ControlListener } from './control-channel.ts';
import { backoffDelayMs } from './errors.ts';
import type { LogLine } from '../log/index.ts';
import { claimRun, finishRun } from './run-log.ts';
import type { Runtime } from './runtime.ts';
import { Semaphore } from './semaphore.ts';
import { TaskThreadPool, type RunHandle, type ThreadOutcome } from './thread-pool.ts';

export interface WorkerOptions {
  queues: readonly QueueName[];
  /** Tasks run at once in this process (over all its queues). */
  concurrency: number;
  /** Celery's --autoscale max,min: concurrency follows the queue depth between these. */
  autoscale?: { max: number; min: number };
  maxTasksPerChild: number;
  /** KiB; 0: no limit. */
  maxMemoryPerChildKb: number;
  /** Seconds running tasks get to finish at shutdown before they are aborted. */
  shutdownGraceSeconds: number;
  /** Default `<pid>@<host>`. */
  name?: string;
  /** Seconds between heartbeats (the worker's row in aggjobs.workers). */
  heartbeatSeconds?: number;
  /** How soon a job of a dead worker is taken again: its lock's duration and the stall check period. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Seconds between autoscale decisions. */
  autoscaleIntervalSeconds?: number;
  /** Seconds between checks for runs recorded as queued whose job the broker lost (default 30). */
  lostJobCheckSeconds?: number;
  /** How old a queued run must be before its missing job counts as lost (default 60). */
  lostJobGraceSeconds?: number;
}

export interface WorkerStats {
  name: string;
  queues: readonly QueueName[];
  concurrency: number;
  active: number;
  processed: number;
  failed: number;
  recycled: number;
  threads: number;
}

export interface WorkerHandle {
  readonly name: string;
  stats(): WorkerStats;
  setConcurrency(n: number): void;
  /** Kills a run of this worker now; false when it is not running here. */
  terminate(runId: string): boolean;
  /** Stops taking tasks, lets running ones finish within the grace period, then aborts them. */
  close(): Promise<void>;
}

type Settled = { result: unknown } | { error: Error };

/**
 * Celery's worker on BullMQ: one BullMQ Worker per queue, sharing `concurrency` task threads. Each
 * run is claimed in aggjobs.task_runs, executed in a thread with its soft and hard limits, and its
 * outcome recorded; transient failures are retried by BullMQ with exponential backoff.
 */
export async function startWorker(runtime: Runtime, options: WorkerOptions): Promise<WorkerHandle> {
  const { settings, pool, broker, logger: baseLogger } = runtime;
  const name = options.name ?? `${process.pid}@${hostname()}`;
  const logger = baseLogger.child({ worker: name });
  const threads = new TaskThreadPool({
    init: {
      settings,
      databaseUrl: runtime.databaseUrl,
      taskModules: [...runtime.taskModules],
      workerName: name,
      brokerKind: broker.kind,
    },
    pool,
    broker,
    maxTasksPerThread: options.maxTasksPerChild,
    maxMemoryKb: options.maxMemoryPerChildKb,
    onRecycle: (reason) => logger.info(`task thread replaced: ${reason}`),
  });
  const slots = new Semaphore(options.concurrency);
  const handles = new Map<string, RunHandle>();
  /** Runs claimed here whose thread has not started yet, and terminate requests for them. */
  const claimed = new Set<string>();
  const terminateRequested = new Set<string>();
  const stats = { processed: 0, failed: 0 };
  let concurrency = options.concurrency;

  const record = async (
    runId: string,
    task: AnyTaskDefinition,
    state: 'succeeded' | 'failed' | 'timed_out' | 'revoked' | 'retrying',
    value: { result?: unknown; error?: string; errorStack?: string; logs?: LogLine[] },
  ): Promise<void> => {
    await finishRun(pool, runId, { state, ...value });
    if (state !== 'retrying') {
      await runtime.resultBackend
        ?.store(runId, state, state === 'succeeded' ? value.result : value.error)
        .catch((e: unknown) =>
          logger.warn({ err: e }, 'could not store the result in CELERY_RESULT_BACKEND'),
        );
    }
    if (state === 'succeeded') stats.processed += 1;
    else if (state !== 'retrying') stats.failed += 1;
    logger.debug({ task: task.name, runId }, `run ${runId} ${state}`);
  };

  /** Maps a thread outcome to the run's final state, and to what BullMQ should do. */
  const settle = async (
    job: Job<JobData, unknown, string>,
    task: AnyTaskDefinition,
    outcome: ThreadOutcome,
  ): Promise<Settled> => {
    const runId = job.id ?? '';
    const limits = timeLimitsOf(task, settings);
    const retriesLeft = job.attemptsMade + 1 < (job.opts.attempts ?? 1);
    const logs = outcome.kind === 'done' ? { logs: outcome.logs } : {};
    if (outcome.kind === 'done' && outcome.outcome.ok) {
      await record(runId, task, 'succeeded', { result: outcome.outcome.result, ...logs });
      return { result: outcome.outcome.result };
    }
    if (outcome.kind === 'killed' && outcome.reason === 'terminated') {
      await record(runId, task, 'revoked', { error: 'terminated by an operator while running' });
      return { error: new UnrecoverableError('terminated') };
    }
    const timedOut =
      (outcome.kind === 'killed' && outcome.reason === 'hard_limit') ||
      (outcome.kind === 'done' &&
        outcome.softLimitHit &&
        !outcome.outcome.ok &&
        outcome.outcome.error.aborted);
    if (timedOut) {
      const limit = outcome.kind === 'killed' ? 'hard' : 'soft';
      const seconds = limit === 'hard' ? limits.hardSeconds : limits.softSeconds;
      const message =
        limit === 'hard'
          ? `exceeded the hard time limit of ${seconds} s: the task was killed`
          : `exceeded the soft time limit of ${seconds} s: the task stopped, nothing of it was committed`;
      if (settings.taskRetryOnTimeout && retriesLeft) {
        await record(runId, task, 'retrying', { error: message, ...logs });
        return { error: new Error(message) };
      }
      await record(runId, task, 'timed_out', { error: message, ...logs });
      return { error: new UnrecoverableError(message) };
    }
    if (outcome.kind === 'killed') {
      // Shutdown: the run goes back to the queue for another worker (or this one, restarted).
      await record(runId, task, 'retrying', { error: 'the worker shut down while it ran' });
      return { error: new Error('worker shut down') };
    }
    const error =
      outcome.kind === 'crashed'
        ? { message: `the task thread crashed: ${outcome.message}`, transient: false, result: undefined }
        : outcome.outcome.ok
          ? { message: 'unreachable', transient: false, result: undefined }
          : outcome.outcome.error;
    const stack = 'stack' in error && typeof error.stack === 'string' ? { errorStack: error.stack } : {};
    if (error.transient && retriesLeft) {
      await record(runId, task, 'retrying', { error: error.message, ...stack, ...logs });
      return { error: new Error(error.message) };
    }
    await record(runId, task, 'failed', { error: error.message, result: error.result, ...stack, ...logs });
    return { error: new UnrecoverableError(error.message) };
  };

  const processor = async (job: Job<JobData, unknown, string>): Promise<unknown> => {
    const runId = job.id ?? '';
    const task = runtime.tasks.get(job.name);
    if (task === undefined) {
      await finishRun(pool, runId, { state: 'failed', error: `unknown task ${job.name}` });
      throw new UnrecoverableError(`unknown task ${job.name}`);
    }
    await slots.acquire();
    try {
      const claim = await claimRun(pool, {
        id: runId,
        task: task.name,
        args: job.data.args,
        queue: task.queue,
        worker: name,
      });
      claimed.add(runId);
      if (claim.kind === 'skip') {
        logger.info({ task: task.name, runId }, `run ${runId} is ${claim.state}: skipped`);
        return { skipped: claim.state };
      }
      // Taken over from a worker that died: its sessions may still hold the rollup's lock.
      if (claim.resumed) await threads.killSessions(runId);
      const limits = timeLimitsOf(task, settings);
      const outcome = await threads.run(
        { type: 'run', runId, task: task.name, args: job.data.args, attempt: claim.attempts },
        { softMs: limits.softSeconds * 1000, hardMs: limits.hardSeconds * 1000 },
        (handle) => {
          handles.set(runId, handle);
          // A terminate that arrived between the claim and the thread start.
          if (terminateRequested.delete(runId)) handle.kill('terminated');
        },
      );
      handles.delete(runId);
      const settled = await settle(job, task, outcome);
      if ('error' in settled) throw settled.error;
      return settled.result;
    } finally {
      handles.delete(runId);
      claimed.delete(runId);
      terminateRequested.delete(runId);
      slots.release();
    }
  };

  const workers: BrokerWorker[] = options.queues.map((queue) => {
    const worker = broker.createWorker(queue, processor, {
      concurrency: options.concurrency,
      lockDurationMs: options.lockDurationMs,
      stalledIntervalMs: options.stalledIntervalMs,
      backoff: (attemptsMade) => backoffDelayMs(attemptsMade, settings.taskRetryBackoffMs),
    });
    worker.on('error', (error) => logger.warn({ err: error }, `queue ${queue}: ${error.message}`));
    void worker.run().catch((error: unknown) => logger.error({ err: error }, `worker for ${queue} stopped`));
    return worker;
  });

  const setConcurrency = (n: number): void => {
    const value = Math.max(1, Math.floor(n));
    if (value === concurrency) return;
    logger.info(`concurrency ${concurrency} → ${value}`);
    concurrency = value;
    slots.resize(value);
    for (const w of workers) w.concurrency = value;
  };

  const heartbeat = async (stopped = false): Promise<void> => {
    await pool
      .query(
        `INSERT INTO aggjobs.workers (name, host, pid, queues, concurrency, active, processed, failed, recycled, rss_bytes, stopped_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $11 THEN now() END)
         ON CONFLICT (name) DO UPDATE SET queues = EXCLUDED.queues, concurrency = EXCLUDED.concurrency,
           active = EXCLUDED.active, processed = EXCLUDED.processed, failed = EXCLUDED.failed,
           recycled = EXCLUDED.recycled, rss_bytes = EXCLUDED.rss_bytes, last_heartbeat = now(),
           stopped_at = EXCLUDED.stopped_at,
           started_at = CASE WHEN workers.stopped_at IS NOT NULL THEN now() ELSE workers.started_at END`,
        [
          name,
          hostname(),
          process.pid,
          options.queues,
          concurrency,
          handles.size,
          stats.processed,
          stats.failed,
          threads.recycled,
          process.memoryUsage.rss(),
          stopped,
        ],
      )
      .catch((error: unknown) => logger.warn({ err: error }, 'heartbeat failed'));
  };
  await heartbeat();
  const heartbeatTimer = setInterval(() => void heartbeat(), (options.heartbeatSeconds ?? 5) * 1000);

  // The run log, not the broker, is the record of what must run: a run still `queued` whose job the
  // broker no longer has (Redis restarted without persistence, or evicted it) is sent again under
  // the same id. Several workers may do this at once: the broker keeps one job per id.
  const resendLostJobs = async (): Promise<void> => {
    const { rows } = await pool.query<{ id: string; task: string; args: Record<string, unknown> }>(
      `SELECT id, task, args FROM aggjobs.task_runs
       WHERE state = 'queued' AND queue = ANY($1::text[]) AND enqueued_at < now() - make_interval(secs => $2)
       ORDER BY enqueued_at LIMIT 200`,
      [options.queues, options.lostJobGraceSeconds ?? 60],
    );
    for (const run of rows) {
      const task = runtime.tasks.get(run.task);
      if (task === undefined || (await broker.queue(task.queue).getJob(run.id)) !== undefined) continue;
      await runtime.addJob(task, run.args, run.id);
      logger.warn(
        { task: run.task, runId: run.id },
        `run ${run.id} was queued but the broker had lost its job: sent again`,
      );
    }
  };
  const lostJobTimer = setInterval(
    () =>
      void resendLostJobs().catch((error: unknown) => logger.warn({ err: error }, 'lost-job check failed')),
    (options.lostJobCheckSeconds ?? 30) * 1000,
  );

  let autoscaleTimer: NodeJS.Timeout | undefined;
  if (options.autoscale !== undefined) {
    const { min, max } = options.autoscale;
    setConcurrency(min);
    autoscaleTimer = setInterval(
      () =>
        void (async () => {
          let waiting = 0;
          for (const q of options.queues) {
            const c = await broker.queue(q).getJobCounts('waiting', 'prioritized');
            waiting += (c.waiting ?? 0) + (c.prioritized ?? 0);
          }
          setConcurrency(Math.min(max, Math.max(min, handles.size + waiting)));
        })().catch(() => undefined),
      (options.autoscaleIntervalSeconds ?? 2) * 1000,
    );
  }

  const control: ControlListener = await listenControl(
    runtime.databaseUrl,
    (message) => {
      if (message.action === 'terminate') {
        const handle = handles.get(message.runId);
        if (handle !== undefined) {
          logger.warn({ runId: message.runId }, `terminating run ${message.runId}`);
          handle.kill('terminated');
        } else if (claimed.has(message.runId)) {
          terminateRequested.add(message.runId);
        }
      } else if (message.action === 'concurrency' && message.worker === name) {
        setConcurrency(message.concurrency);
      } else if (message.action === 'shutdown' && message.worker === name) {
        void handle.close();
      }
    },
    (error) => logger.warn({ err: error }, 'control channel error'),
  );

  logger.info(
    { queues: options.queues, concurrency, broker: broker.describe },
    `worker ${name} ready: queues ${options.queues.join(', ')}, concurrency ${concurrency}`,
  );

  let closing: Promise<void> | undefined;
  const handle: WorkerHandle = {
    name,
    stats: () => ({
      name,
      queues: options.queues,
      concurrency,
      active: handles.size,
      processed: stats.processed,
      failed: stats.failed,
      recycled: threads.recycled,
      threads: threads.threads,
    }),
    setConcurrency,
    terminate(runId) {
      const h = handles.get(runId);
      h?.kill('terminated');
      return h !== undefined;
    },
    close() {
      closing ??= (async () => {
        clearInterval(heartbeatTimer);
        clearInterval(lostJobTimer);
        if (autoscaleTimer !== undefined) clearInterval(autoscaleTimer);
        logger.info(`worker ${name} stopping: ${handles.size} task(s) running`);
        const closed = Promise.all(workers.map((w) => w.close()));
        let graceTimer: NodeJS.Timeout | undefined;
        const grace = new Promise<'timeout'>((r) => {
          graceTimer = setTimeout(() => r('timeout'), options.shutdownGraceSeconds * 1000);
        });
        const outcome = await Promise.race([closed, grace]);
        clearTimeout(graceTimer);
        if (outcome === 'timeout') {
          logger.warn(`grace period over: aborting ${handles.size} running task(s); they will run again`);
          for (const h of handles.values()) h.kill('shutdown');
          await closed;
        }
        await control.close();
        await threads.close();
        await heartbeat(true);
        logger.info(`worker ${name} stopped`);
      })();
      return closing;
    },
  };
  return handle;
}
