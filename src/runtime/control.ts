import type { Pool } from '../db/index.ts';
import {
  backfillId,
  backfillProgress,
  cancelBackfill,
  type BackfillArgs,
  type BackfillProgress,
  type QueueName,
} from '../tasks/index.ts';
import type { AsyncResult } from './async-result.ts';
import { sendControl } from './control-channel.ts';
import {
  getRun,
  isOpenState,
  listRuns,
  revokeQueued,
  type RunQuery,
  type RunRecord,
  type RunRow,
  type RunState,
  retryableStates,
  toRecord,
} from './run-log.ts';
import { promoteRun, requestTermination, revokeOrphan } from './run-ownership.ts';
import type { Runtime } from './runtime.ts';
import { listSchedules, type ScheduleInfo } from './schedules.ts';

export interface QueueCounts {
  queue: string;
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
  paused: boolean;
  /** BullMQ's global rate limit of the queue (jobs per duration, over every worker), if set. */
  rateLimit: { max: number; durationMs: number } | null;
}

export interface WorkerInfo {
  name: string;
  host: string;
  pid: number;
  queues: string[];
  concurrency: number;
  active: number;
  processed: number;
  failed: number;
  recycled: number;
  rssBytes: number | null;
  startedAt: Date;
  lastHeartbeat: Date;
  online: boolean;
}

export interface RevokeOutcome {
  runId: string;
  /**
   * What was done: removed from the queue, revoked (a queued run, or a running one whose worker is
   * gone), terminating (its worker was told to kill it), cancelling (a backfill: its windows were
   * cancelled, and it ends `revoked` as cancelled once its running windows stopped), or nothing
   * (already finished).
   */
  action: 'revoked' | 'terminating' | 'cancelling' | 'none';
  state: string | undefined;
  /** For a backfill: windows cancelled, and window runs told to stop. */
  backfill?: BackfillCancelOutcome;
}

export interface BackfillCancelOutcome {
  /** Windows not done that were marked cancelled. */
  cancelled: number;
  /** Window runs that had not started, revoked. */
  revoked: number;
  /** Running window runs terminated (or revoked, when their worker was gone). */
  terminated: number;
}

export interface PromoteOutcome {
  runId: string;
  /** promoted: it may start now; none: it is not waiting (running or finished) or unknown. */
  action: 'promoted' | 'none';
  state: string | undefined;
}

/** A worker is online while its heartbeat is younger than this (three missed heartbeats). */
const ONLINE_SECONDS = 15;

/** `retry` of a run aggjobs has no record of. */
export class RunNotFoundError extends Error {
  override readonly name = 'RunNotFoundError';
  constructor(readonly runId: string) {
    super(`no run ${runId}`);
  }
}

/** `retry` of a run that is not failed, timed out or revoked. */
export class RunNotRetryableError extends Error {
  override readonly name = 'RunNotRetryableError';
  constructor(
    readonly runId: string,
    readonly state: RunState,
  ) {
    super(`run ${runId} is ${state}: only failed, timed-out or revoked runs can be retried`);
  }
}

/**
 * Operating the runtime from another process: the CLI's `aggjobs control` and the dashboard. Every
 * action goes through the database (run rows, LISTEN/NOTIFY) or the broker, so it works from any
 * machine, on both brokers.
 */
export interface Control {
  revoke(runId: string, options?: { terminate?: boolean }): Promise<RevokeOutcome>;
  terminate(runId: string): Promise<RevokeOutcome>;
  /**
   * A new run of a failed, timed-out or revoked run's task with its arguments. Throws
   * RunNotFoundError or RunNotRetryableError (the CLI and the API answer them).
   */
  retry(runId: string): Promise<AsyncResult>;
  /** A delayed queued or retrying run (countdown, retry backoff) may start now; it keeps its id. */
  promote(runId: string): Promise<PromoteOutcome>;
  pause(queue: QueueName): Promise<void>;
  resume(queue: QueueName): Promise<void>;
  setConcurrency(worker: string, concurrency: number): Promise<void>;
  /** Celery's autoscale from now on: the worker's concurrency follows its queues' depth in [min, max]. */
  autoscale(worker: string, max: number, min: number): Promise<void>;
  /** Celery's pool_restart: the worker's idle task threads (async pool: run sessions) are replaced. */
  poolRestart(worker: string): Promise<void>;
  /** Celery's add_consumer / cancel_consumer: the worker starts or stops taking a queue's jobs. */
  addConsumer(worker: string, queue: QueueName): Promise<void>;
  cancelConsumer(worker: string, queue: QueueName): Promise<void>;
  /** Celery's shutdown: the worker stops (its running tasks get WORKER_SHUTDOWN_GRACE seconds). */
  shutdown(worker: string): Promise<void>;
  /**
   * Celery's time_limit: every running worker gives `task` these limits (seconds) from its next run.
   * Not kept: a worker started later has the configured ones (TASK_TIME_LIMITS).
   */
  setTimeLimits(task: string, soft: number, hard: number): Promise<void>;
  /** The queue's rate limit over every worker (BullMQ's global rate limit); null removes it. */
  setRateLimit(queue: QueueName, limit: { max: number; durationMs: number } | null): Promise<void>;
  /** Deletes the rows of workers offline for more than `offlineSeconds`; returns their names. */
  pruneWorkers(offlineSeconds: number): Promise<string[]>;
  queueCounts(): Promise<QueueCounts[]>;
  workers(): Promise<WorkerInfo[]>;
  schedules(): Promise<ScheduleInfo[]>;
  beat(): Promise<{ holder: string; acquiredAt: Date; expiresAt: Date; active: boolean } | undefined>;
  runs(query?: RunQuery): Promise<RunRecord[]>;
  run(runId: string): Promise<RunRecord | undefined>;
  /** The runs started by retrying this one, newest first. */
  retriesOf(runId: string): Promise<RunRecord[]>;
  backfillProgress(runId: string): Promise<BackfillProgress | undefined>;
  /**
   * Stops a backfill: its windows not done are cancelled, their queued runs revoked and running ones
   * terminated; the backfill's run then ends `revoked`, its result's status `cancelled`.
   */
  cancelBackfill(runId: string): Promise<BackfillCancelOutcome>;
}

async function backfillOf(pool: Pool, runtime: Runtime, runId: string): Promise<string | undefined> {
  const run = await getRun(pool, runId);
  if (run === undefined || run.task !== 'backfill_aggregations') return undefined;
  return backfillId(run.args as unknown as BackfillArgs, runtime.settings.analyticsTimezone);
}

/**
 * Marks a backfill's queued or retrying window runs revoked. Their jobs stay: a worker that takes
 * one skips it, so the flow's parent job still sees every child finish and sums up.
 * $1 the backfill's run id.
 */
async function revokeQueuedWindows(pool: Pool, parentId: string): Promise<number> {
  const { rowCount } = await pool.query(
    `UPDATE aggjobs.task_runs
     SET state = 'revoked', finished_at = now(), state_changed_at = now(), not_before = NULL,
         error = 'cancelled with its backfill by an operator before it ran'
     WHERE parent_id = $1 AND state IN ('queued', 'retrying')`,
    [parentId],
  );
  return rowCount ?? 0;
}

export function createControl(runtime: Runtime): Control {
  const { pool, broker } = runtime;
  const queueOf = (name: string): QueueName => (name === 'maintenance' ? 'maintenance' : 'aggregation');

  const cancelBackfillRun = async (runId: string, id: string): Promise<BackfillCancelOutcome> => {
    // Windows first: a window run that starts from now on finds its window cancelled and ends revoked.
    const { cancelled, runningRuns } = await cancelBackfill(pool, id);
    const revoked = await revokeQueuedWindows(pool, runId);
    let terminated = 0;
    for (const child of runningRuns) {
      if ((await revoke(child, { terminate: true })).action !== 'none') terminated += 1;
    }
    return { cancelled, revoked, terminated };
  };

  const revoke: Control['revoke'] = async (runId, options = {}) => {
    const run = await getRun(pool, runId);
    if (run === undefined) return { runId, action: 'none', state: undefined };
    if (run.task === 'backfill_aggregations' && isOpenState(run.state)) {
      // Revoking only the parent would leave its windows running: a backfill is cancelled instead.
      const id = backfillId(run.args as unknown as BackfillArgs, runtime.settings.analyticsTimezone);
      const backfill = await cancelBackfillRun(runId, id);
      if (backfill.cancelled + backfill.revoked + backfill.terminated > 0) {
        return { runId, action: 'cancelling', state: run.state, backfill };
      }
      // Nothing left to cancel: its windows have all finished, and the run itself is revoked (queued:
      // it will not sum up) or terminated like any other run.
    }
    // Removing the job is best effort: a worker that takes it anyway finds the row revoked and skips it.
    const revoked = async (): Promise<RevokeOutcome> => {
      await broker
        .queue(queueOf(run.queue))
        .remove(runId)
        .catch(() => undefined);
      return { runId, action: 'revoked', state: 'revoked' };
    };
    if (run.state === 'queued' || run.state === 'retrying') {
      await revokeQueued(pool, [runId]);
      return await revoked();
    }
    if (run.state === 'running' && options.terminate === true) {
      // Nobody renews its lease: its worker is gone, there is nobody to tell. It ends here.
      if (await revokeOrphan(pool, runId)) return await revoked();
      // Recorded on the run (its owner sees it at its next lease renewal) and told at once.
      await requestTermination(pool, runId);
      await sendControl(pool, { action: 'terminate', runId });
      return { runId, action: 'terminating', state: 'running' };
    }
    return { runId, action: 'none', state: run.state };
  };

  return {
    revoke,
    terminate: (runId) => revoke(runId, { terminate: true }),
    async retry(runId) {
      const run = await getRun(pool, runId);
      if (run === undefined) throw new RunNotFoundError(runId);
      if (!retryableStates.includes(run.state)) throw new RunNotRetryableError(runId, run.state);
      // The new run names the one it retried from its first row on (the dashboard links both ways).
      return await runtime.enqueue(run.task, { kwargs: run.args }, { retryOf: runId });
    },
    async promote(runId) {
      const run = await getRun(pool, runId);
      if (run === undefined) return { runId, action: 'none', state: undefined };
      if (!(await promoteRun(pool, runId))) return { runId, action: 'none', state: run.state };
      const job = await broker.queue(queueOf(run.queue)).getJob(runId);
      // Only a delayed job can be promoted; a waiting one is already due.
      if (job !== undefined && (await job.getState()) === 'delayed') await job.promote();
      return { runId, action: 'promoted', state: run.state };
    },
    pause: async (queue) => await broker.queue(queue).pause(),
    resume: async (queue) => await broker.queue(queue).resume(),
    setConcurrency: async (worker, concurrency) => {
      if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) {
        throw new Error(`concurrency must be an integer from 1 to 256, got ${concurrency}`);
      }
      await sendControl(pool, { action: 'concurrency', worker, concurrency });
    },
    autoscale: async (worker, max, min) => {
      if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max > 256 || min > max) {
        throw new Error(`autoscale needs integers 1 ≤ min ≤ max ≤ 256, got min ${min}, max ${max}`);
      }
      await sendControl(pool, { action: 'autoscale', worker, max, min });
    },
    poolRestart: async (worker) => await sendControl(pool, { action: 'pool_restart', worker }),
    addConsumer: async (worker, queue) => await sendControl(pool, { action: 'add_consumer', worker, queue }),
    cancelConsumer: async (worker, queue) =>
      await sendControl(pool, { action: 'cancel_consumer', worker, queue }),
    shutdown: async (worker) => await sendControl(pool, { action: 'shutdown', worker }),
    setTimeLimits: async (task, soft, hard) => {
      if (!(soft > 0 && hard > 0 && soft <= hard)) {
        throw new Error(`time limits need 0 < soft ≤ hard, got soft ${soft}, hard ${hard}`);
      }
      await sendControl(pool, { action: 'time_limit', task, soft, hard });
    },
    setRateLimit: async (queue, limit) => {
      if (limit === null) await broker.queue(queue).removeGlobalRateLimit();
      else await broker.queue(queue).setGlobalRateLimit(limit.max, limit.durationMs);
    },
    async pruneWorkers(offlineSeconds) {
      // $1 seconds offline: stopped, or no heartbeat for that long (and at least ONLINE_SECONDS).
      const { rows } = await pool.query<{ name: string }>(
        `DELETE FROM aggjobs.workers
         WHERE last_heartbeat < now() - make_interval(secs => greatest($1::float8, $2::float8))
            OR (stopped_at IS NOT NULL AND stopped_at < now() - make_interval(secs => $1::float8))
         RETURNING name`,
        [offlineSeconds, ONLINE_SECONDS],
      );
      return rows.map((r) => r.name).sort();
    },
    async queueCounts() {
      const counts = await broker.counts();
      const result: QueueCounts[] = [];
      for (const [queue, c] of Object.entries(counts)) {
        const q = broker.queue(queueOf(queue));
        const limit = await q.getGlobalRateLimit();
        result.push({
          queue,
          ...c,
          paused: await q.isPaused(),
          rateLimit: limit === null ? null : { max: limit.max, durationMs: limit.duration },
        });
      }
      return result;
    },
    async workers() {
      const { rows } = await pool.query<WorkerInfo>(
        `SELECT name, host, pid, queues, concurrency, active, processed, failed, recycled,
                rss_bytes AS "rssBytes", started_at AS "startedAt", last_heartbeat AS "lastHeartbeat",
                stopped_at IS NULL AND last_heartbeat > now() - make_interval(secs => $1) AS online
         FROM aggjobs.workers ORDER BY online DESC, name`,
        [ONLINE_SECONDS],
      );
      return rows;
    },
    schedules: () => listSchedules(pool, runtime.tasks, runtime.settings, runtime.now()),
    async beat() {
      const { rows } = await pool.query<{
        holder: string;
        acquired_at: Date;
        expires_at: Date;
        active: boolean;
      }>('SELECT holder, acquired_at, expires_at, expires_at > now() AS active FROM aggjobs.beat_leader');
      const row = rows[0];
      return row === undefined
        ? undefined
        : { holder: row.holder, acquiredAt: row.acquired_at, expiresAt: row.expires_at, active: row.active };
    },
    runs: (query) => listRuns(pool, query),
    run: (runId) => getRun(pool, runId),
    async retriesOf(runId) {
      const { rows } = await pool.query<RunRow>(
        'SELECT * FROM aggjobs.task_runs WHERE retry_of = $1 ORDER BY enqueued_at DESC LIMIT 50',
        [runId],
      );
      return rows.map(toRecord);
    },
    async backfillProgress(runId) {
      const id = await backfillOf(pool, runtime, runId);
      return id === undefined ? undefined : await backfillProgress(pool, id);
    },
    async cancelBackfill(runId) {
      const id = await backfillOf(pool, runtime, runId);
      if (id === undefined) throw new Error(`run ${runId} is not a backfill_aggregations run`);
      return await cancelBackfillRun(runId, id);
    },
  };
}
