import { hostname } from 'node:os';
import { timeLimitsOf, type QueueName, type TimeLimits } from '../tasks/index.ts';
import type { BrokerWorker } from './broker.ts';
import { listenControl, type ControlListener } from './control-channel.ts';
import { backoffDelayMs } from './errors.ts';
import { createJobProcessor, type ActiveRun } from './job-processor.ts';
import { reapRuns } from './run-reaper.ts';
import { renewLeases } from './run-ownership.ts';
import type { Runtime } from './runtime.ts';
import { JobSlots } from './job-slots.ts';
import { TaskThreadPool } from './thread-pool.ts';

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
  /**
   * Where tasks run (default WORKER_POOL, `async`): `async` in this process's event loop (the hard
   * limit kills the run's sessions and abandons it, which cannot stop a loop that never yields), or
   * `threads`, each task in a worker thread (about 33 MiB more per slot; the hard limit ends even a
   * busy loop, and max-tasks/memory-per-child replace the threads).
   */
  pool?: 'threads' | 'async';
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
  /**
   * Resolves when a shutdown was requested for this worker from another process (the dashboard,
   * `aggjobs control`); the worker closes itself, and the process that runs it should then exit.
   */
  readonly shutdownRequested: Promise<void>;
  /**
   * Aborts the running tasks now, as at the end of the grace period (their threads and database
   * sessions are killed, their transactions roll back, the runs go back to `retrying`), and waits
   * up to `waitMs` for their outcomes to be recorded. The second Ctrl-C.
   */
  abortRunning(waitMs?: number): Promise<void>;
}

/**
 * Celery's worker on BullMQ: one BullMQ Worker per queue, fetching only into the process's
 * `concurrency` slots (shared by the queues). Each run is claimed in aggjobs.task_runs with a lease
 * this process renews, executed in a thread with its soft and hard limits, and its outcome recorded
 * fenced by the lease; transient failures are retried by BullMQ with exponential backoff. A reaper
 * settles runs whose owner or job is gone (run-reaper.ts).
 */
export async function startWorker(runtime: Runtime, options: WorkerOptions): Promise<WorkerHandle> {
  const { settings, pool, broker, logger: baseLogger } = runtime;
  const name = options.name ?? `${process.pid}@${hostname()}`;
  const logger = baseLogger.child({ worker: name });
  const executor = options.pool ?? settings.workerPool;
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
    executor,
    maxTasksPerThread: options.maxTasksPerChild,
    maxMemoryKb: options.maxMemoryPerChildKb,
    onRecycle: (reason) => logger.info(`task thread replaced: ${reason}`),
  });
  const slots = new JobSlots(options.concurrency);
  const active = new Map<string, ActiveRun>();
  const stats = { processed: 0, failed: 0 };
  let concurrency = options.concurrency;
  // A run's lease lasts as long as its job's BullMQ lock: both lapse together when the worker dies.
  const leaseMs = options.lockDurationMs ?? 30_000;
  // Time limits changed at run time (the time_limit control message), by task name.
  const limitOverrides = new Map<string, TimeLimits>();
  const processor = createJobProcessor({
    runtime,
    threads,
    workerName: name,
    logger,
    leaseMs,
    active,
    stats,
    timeLimits: (task) => limitOverrides.get(task.name) ?? timeLimitsOf(task, settings),
  });

  // The queues this worker consumes, and a BullMQ Worker for each (add_consumer / cancel_consumer
  // change them at run time).
  const queues: QueueName[] = [...options.queues];
  const consumers = new Map<QueueName, BrokerWorker>();
  const consume = (queue: QueueName): void => {
    const worker = broker.createWorker(queue, processor, {
      concurrency: options.concurrency,
      lockDurationMs: options.lockDurationMs,
      stalledIntervalMs: options.stalledIntervalMs,
      backoff: (attemptsMade) => backoffDelayMs(attemptsMade, settings.taskRetryBackoffMs),
      // The run's attempts (aggjobs.task_runs) decide when a run whose worker died is given up;
      // BullMQ's stall limit is only the backstop, mirrored by the reaper.
      maxStalledCount: settings.taskMaxRetries + 1,
      slots,
    });
    worker.on('error', (error) => logger.warn({ err: error }, `queue ${queue}: ${error.message}`));
    void worker.run().catch((error: unknown) => logger.error({ err: error }, `worker for ${queue} stopped`));
    consumers.set(queue, worker);
  };
  for (const queue of queues) consume(queue);

  const setConcurrency = (n: number): void => {
    const value = Math.max(1, Math.floor(n));
    if (value === concurrency) return;
    logger.info(`concurrency ${concurrency} → ${value}`);
    concurrency = value;
    // Each BullMQ Worker's own limit follows the free slots (job-slots.ts).
    slots.resize(value);
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
          queues,
          concurrency,
          active.size,
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

  // Leases: renewed every third of their duration; a run whose lease this process no longer holds
  // (taken over after a stall, settled by the reaper, revoked) stops at once, and writes nothing.
  const renew = async (): Promise<void> => {
    const { lost, terminate } = await renewLeases(
      pool,
      [...active.values()].map((run) => run.lease),
      leaseMs,
    );
    // A terminate whose NOTIFY this worker missed (control session down) is seen here.
    for (const runId of terminate) {
      const run = active.get(runId);
      if (run === undefined) continue;
      if (run.handle !== undefined) run.handle.kill('terminated');
      else run.pendingKill = 'terminated';
    }
    for (const runId of lost) {
      const run = active.get(runId);
      if (run === undefined) continue;
      logger.warn(
        { runId },
        `run ${runId} is no longer this worker's: its attempt ${run.lease.attempt} stops`,
      );
      if (run.handle !== undefined) run.handle.kill('lease_lost');
      else run.pendingKill = 'lease_lost';
    }
  };
  const leaseTimer = setInterval(
    () => void renew().catch((error: unknown) => logger.warn({ err: error }, 'lease renewal failed')),
    Math.max(100, Math.floor(leaseMs / 3)),
  );

  // The run log, not the broker, is the record of what must run: the reaper sends again jobs the
  // broker lost and settles runs whose worker died (see run-reaper.ts).
  const reap = async (): Promise<void> => {
    await reapRuns(runtime, {
      queues,
      lostJobGraceSeconds: options.lostJobGraceSeconds ?? 60,
      logger,
    });
  };
  const reaperTimer = setInterval(
    () => void reap().catch((error: unknown) => logger.warn({ err: error }, 'reaper failed')),
    (options.lostJobCheckSeconds ?? 30) * 1000,
  );

  // Set when close() begins: no consumer is added, and no autoscale started, from then on.
  let stopping = false;
  let autoscaleTimer: NodeJS.Timeout | undefined;
  const autoscale = (min: number, max: number): void => {
    if (stopping) return;
    clearInterval(autoscaleTimer);
    setConcurrency(min);
    autoscaleTimer = setInterval(
      () =>
        void (async () => {
          let waiting = 0;
          for (const q of queues) {
            const c = await broker.queue(q).getJobCounts('waiting', 'prioritized');
            waiting += (c.waiting ?? 0) + (c.prioritized ?? 0);
          }
          setConcurrency(Math.min(max, Math.max(min, active.size + waiting)));
        })().catch(() => undefined),
      (options.autoscaleIntervalSeconds ?? 2) * 1000,
    );
  };
  if (options.autoscale !== undefined) autoscale(options.autoscale.min, options.autoscale.max);

  // Consumers cancelled at run time whose running jobs have not ended yet: a shutdown waits for them
  // as for the others (within its grace period), so their runs end as the shutdown decides.
  const cancelling = new Set<Promise<void>>();
  let requestShutdown: () => void = () => undefined;
  const shutdownRequested = new Promise<void>((resolve) => {
    requestShutdown = resolve;
  });
  const control: ControlListener = await listenControl(
    runtime.databaseUrl,
    (message) => {
      if (message.action === 'terminate') {
        const run = active.get(message.runId);
        if (run !== undefined) {
          logger.warn({ runId: message.runId }, `terminating run ${message.runId}`);
          if (run.handle !== undefined) run.handle.kill('terminated');
          else run.pendingKill = 'terminated';
        }
      } else if (message.action === 'concurrency' && message.worker === name) {
        setConcurrency(message.concurrency);
      } else if (message.action === 'autoscale' && message.worker === name) {
        logger.info(`autoscale ${message.min}–${message.max} (from another process)`);
        autoscale(message.min, message.max);
      } else if (message.action === 'pool_restart' && message.worker === name) {
        logger.info(`pool restart: ${threads.restart()} idle replaced now, busy ones after their run`);
      } else if (message.action === 'add_consumer' && message.worker === name) {
        if (!consumers.has(message.queue) && !stopping) {
          logger.info(`now consuming queue ${message.queue}`);
          queues.push(message.queue);
          consume(message.queue);
          void heartbeat();
        }
      } else if (message.action === 'cancel_consumer' && message.worker === name) {
        const consumer = consumers.get(message.queue);
        if (consumer !== undefined) {
          logger.info(`no longer consuming queue ${message.queue}: its running jobs finish`);
          consumers.delete(message.queue);
          queues.splice(queues.indexOf(message.queue), 1);
          const closed = consumer
            .close()
            .catch((error: unknown) => logger.warn({ err: error }, `queue ${message.queue}: close failed`))
            .then(() => heartbeat());
          cancelling.add(closed);
          void closed.finally(() => cancelling.delete(closed));
        }
      } else if (message.action === 'time_limit') {
        logger.info(`time limits of ${message.task}: soft ${message.soft} s, hard ${message.hard} s`);
        limitOverrides.set(message.task, { softSeconds: message.soft, hardSeconds: message.hard });
      } else if (message.action === 'shutdown' && message.worker === name) {
        logger.warn(`worker ${name}: shutdown requested from another process`);
        requestShutdown();
        void handle.close();
      }
    },
    (error) => logger.warn({ err: error }, 'control channel error'),
    { onReconnect: () => logger.info('control channel connected again') },
  );

  logger.info(
    { queues, concurrency, broker: broker.describe },
    `worker ${name} ready: queues ${queues.join(', ')}, concurrency ${concurrency}, pool ${executor}`,
  );

  /** Every run here stops for the shutdown: now, or as soon as it starts (its handle to come). */
  const stopActiveRuns = (): void => {
    for (const run of active.values()) {
      if (run.handle !== undefined) run.handle.kill('shutdown');
      else run.pendingKill = 'shutdown';
    }
  };

  let closing: Promise<void> | undefined;
  const handle: WorkerHandle = {
    shutdownRequested,
    name,
    stats: () => ({
      name,
      queues: [...queues],
      concurrency,
      active: active.size,
      processed: stats.processed,
      failed: stats.failed,
      recycled: threads.recycled,
      threads: threads.threads,
    }),
    setConcurrency,
    terminate(runId) {
      const run = active.get(runId);
      if (run === undefined) return false;
      if (run.handle !== undefined) run.handle.kill('terminated');
      else run.pendingKill = 'terminated';
      return true;
    },
    async abortRunning(waitMs = 5000) {
      slots.close();
      stopActiveRuns();
      const deadline = Date.now() + waitMs;
      while (active.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    },
    close() {
      stopping = true;
      closing ??= (async () => {
        clearInterval(heartbeatTimer);
        clearInterval(reaperTimer);
        if (autoscaleTimer !== undefined) clearInterval(autoscaleTimer);
        // Nothing more starts from here: the slots refuse every fetch.
        slots.close();
        logger.info(`worker ${name} stopping: ${active.size} task(s) running`);
        const closed = Promise.all([...[...consumers.values()].map((w) => w.close()), ...cancelling]);
        let graceTimer: NodeJS.Timeout | undefined;
        const grace = new Promise<'timeout'>((r) => {
          graceTimer = setTimeout(() => r('timeout'), options.shutdownGraceSeconds * 1000);
        });
        const outcome = await Promise.race([closed, grace]);
        clearTimeout(graceTimer);
        if (outcome === 'timeout') {
          logger.warn(`grace period over: aborting ${active.size} running task(s); they will run again`);
          stopActiveRuns();
          await closed;
        }
        clearInterval(leaseTimer);
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
