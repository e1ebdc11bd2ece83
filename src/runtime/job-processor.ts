import { UnrecoverableError, type Job } from 'bullmq';
import type { Logger } from '../log/index.ts';
import { timeLimitsOf, type AnyTaskDefinition, type TimeLimits } from '../tasks/index.ts';
import type { JobData } from './broker.ts';
import { backoffDelayMs } from './errors.ts';
import { recordRejected } from './run-log.ts';
import {
  claimRecordedRuns,
  claimRun,
  finishAttempts,
  type AttemptOutcome,
  type Lease,
  type RecordedClaimRequest,
} from './run-ownership.ts';
import type { Runtime } from './runtime.ts';
import { StatementBatcher } from './statement-batcher.ts';
import type { RunHandle, TaskThreadPool, ThreadOutcome } from './thread-pool.ts';

/** A run this process works on: its lease, and its thread once started. */
export interface ActiveRun {
  readonly lease: Lease;
  handle: RunHandle | undefined;
  /** What to do to the thread as soon as it starts (a terminate, a lease lost, a forced stop). */
  pendingKill: 'terminated' | 'lease_lost' | 'shutdown' | undefined;
}

export interface ProcessorContext {
  readonly runtime: Runtime;
  readonly threads: TaskThreadPool;
  readonly workerName: string;
  readonly logger: Logger;
  /** How long a lease lasts without renewal (the BullMQ lock duration). */
  readonly leaseMs: number;
  /** The runs in progress here, by run id: the lease keeper renews them, control finds them. */
  readonly active: Map<string, ActiveRun>;
  /** A task's limits as changed at run time (the time_limit control message); default timeLimitsOf. */
  readonly timeLimits?: (task: AnyTaskDefinition) => TimeLimits;
  readonly stats: { processed: number; failed: number };
}

type BrokerJob = Job<JobData, unknown, string>;
type Settled = { result: unknown } | { error: Error };

/** The attempts a run gets: TASK_MAX_RETRIES + 1 (as its job was given when enqueued). */
function maxAttemptsOf(job: BrokerJob, ctx: ProcessorContext): number {
  return job.opts.attempts ?? ctx.runtime.settings.taskMaxRetries + 1;
}

/** Maps a thread outcome to the attempt's outcome in aggjobs.task_runs and to what BullMQ should do. */
function outcomeOf(
  ctx: ProcessorContext,
  /** The limits the attempt ran with (a time_limit message during the run changes the next one's). */
  limits: TimeLimits,
  attempt: number,
  maxAttempts: number,
  outcome: Exclude<ThreadOutcome, { kind: 'killed'; reason: 'lease_lost' }>,
): { record: AttemptOutcome; bullmq: Settled } {
  const { settings } = ctx.runtime;
  const retriesLeft = attempt < maxAttempts;
  const retryInMs = backoffDelayMs(attempt, settings.taskRetryBackoffMs, () => 0.5);
  const logs = outcome.kind === 'done' ? { logs: outcome.logs } : {};
  if (outcome.kind === 'done' && outcome.outcome.ok) {
    const result = outcome.outcome.result;
    return { record: { state: 'succeeded', result, ...logs }, bullmq: { result } };
  }
  if (outcome.kind === 'killed' && outcome.reason === 'terminated') {
    const error = 'terminated by an operator while running';
    return { record: { state: 'revoked', error }, bullmq: { error: new UnrecoverableError(error) } };
  }
  const timedOut =
    (outcome.kind === 'killed' && outcome.reason === 'hard_limit') ||
    (outcome.kind === 'done' && outcome.softLimitHit && !outcome.outcome.ok && outcome.outcome.error.aborted);
  if (timedOut) {
    const hard = outcome.kind === 'killed';
    const error = hard
      ? `exceeded the hard time limit of ${limits.hardSeconds} s: the task was killed`
      : `exceeded the soft time limit of ${limits.softSeconds} s: the task stopped, nothing of it was committed`;
    if (settings.taskRetryOnTimeout && retriesLeft) {
      return {
        record: { state: 'retrying', error, retryInMs, ...logs },
        bullmq: { error: new Error(error) },
      };
    }
    return {
      record: { state: 'timed_out', error, ...logs },
      bullmq: { error: new UnrecoverableError(error) },
    };
  }
  if (outcome.kind === 'killed') {
    // Shutdown: the run goes back to the queue for another worker (or this one, restarted).
    const error = 'the worker shut down while it ran';
    return { record: { state: 'retrying', error, retryInMs: 0 }, bullmq: { error: new Error(error) } };
  }
  const error =
    outcome.kind === 'crashed'
      ? { message: `the task thread crashed: ${outcome.message}`, transient: false, result: undefined }
      : outcome.outcome.ok
        ? { message: 'unreachable', transient: false, result: undefined }
        : outcome.outcome.error;
  const stack = 'stack' in error && typeof error.stack === 'string' ? { errorStack: error.stack } : {};
  if (outcome.kind === 'done' && !outcome.outcome.ok && outcome.outcome.error.name === 'TaskRevokedError') {
    // The task ended itself because an operator cancelled it (a backfill whose windows were cancelled).
    return {
      record: { state: 'revoked', error: error.message, result: error.result, ...logs },
      bullmq: { error: new UnrecoverableError(error.message) },
    };
  }
  if (error.transient && retriesLeft) {
    return {
      record: { state: 'retrying', error: error.message, retryInMs, ...stack, ...logs },
      bullmq: { error: new Error(error.message) },
    };
  }
  return {
    record: { state: 'failed', error: error.message, result: error.result, ...stack, ...logs },
    bullmq: { error: new UnrecoverableError(error.message) },
  };
}

/**
 * The BullMQ processor of a worker process: takes the run's arguments from its row, or validates a
 * job no enqueue path made like `applyAsync` (invalid: it fails with the reason and never runs);
 * claims the run with a lease (taking it over, and killing the previous attempt's sessions, when its
 * worker died); runs it in a thread with its time limits; records the outcome fenced by the lease.
 */
export function createJobProcessor(ctx: ProcessorContext): (job: BrokerJob) => Promise<unknown> {
  const { runtime, threads, logger, active, stats } = ctx;
  const { pool } = runtime;
  // The slots' claims and finishes, batched: one statement for those that come while one is under
  // way (statement-batcher.ts).
  const claims = new StatementBatcher(
    (runs: RecordedClaimRequest[]) => claimRecordedRuns(pool, runs),
    (run) => run.id,
  );
  const finishes = new StatementBatcher(
    (attempts: { lease: Lease; outcome: AttemptOutcome }[]) => finishAttempts(pool, attempts),
    (attempt) => attempt.lease.runId,
  );

  const reject = async (job: BrokerJob, task: string, queue: string, error: string): Promise<never> => {
    const runId = job.id ?? '';
    await recordRejected(pool, { id: runId, task, args: job.data?.args ?? {}, queue, error });
    logger.warn({ task, runId }, `job ${runId} refused: ${error}`);
    stats.failed += 1;
    throw new UnrecoverableError(error);
  };

  return async (job) => {
    const runId = job.id ?? '';
    const task = runtime.tasks.get(job.name);
    if (task === undefined) return await reject(job, job.name, job.queueName, `unknown task ${job.name}`);
    // The run's row is the authority on its arguments (validated when it was enqueued; rules that
    // depend on the clock must not fail it later), and a recorded run is claimed with them in the
    // same statement. A job without a row was made by another tool: it is validated like
    // applyAsync, and refused when invalid.
    const maxAttempts = maxAttemptsOf(job, ctx);
    const recorded = await claims.submit({
      id: runId,
      worker: ctx.workerName,
      maxAttempts,
      leaseMs: ctx.leaseMs,
    });
    let args = recorded.args;
    if (args === undefined) {
      try {
        const raw: unknown = job.data?.args ?? {};
        if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
          throw new Error('args must be an object');
        }
        args = runtime.validate(task.name, { kwargs: raw as Record<string, unknown> });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        return await reject(job, task.name, task.queue, `invalid arguments: ${message}`);
      }
    }

    const claim =
      recorded.claim ??
      (await claimRun(pool, {
        id: runId,
        task: task.name,
        args,
        queue: task.queue,
        worker: ctx.workerName,
        maxAttempts,
        leaseMs: ctx.leaseMs,
      }));
    if (claim.kind === 'skip') {
      logger.info({ task: task.name, runId }, `run ${runId} is ${claim.state}: skipped`);
      return { skipped: claim.state };
    }
    if (claim.kind === 'exhausted') {
      // The dead attempt's sessions may still wait on a lock, and would commit when it goes.
      await threads.killSessions(runId);
      logger.warn({ task: task.name, runId }, `run ${runId} failed: ${claim.error}`);
      stats.failed += 1;
      await storeResult(ctx, runId, 'failed', claim.error);
      throw new UnrecoverableError(claim.error);
    }
    const { lease, takenOverFrom } = claim;
    const run: ActiveRun = { lease, handle: undefined, pendingKill: undefined };
    // The run taken over may be this process's own earlier attempt (BullMQ gave the job again after
    // its lock was lost): that attempt stops now, not at its next lease renewal, and writes nothing.
    const earlier = active.get(runId);
    if (earlier !== undefined) {
      earlier.pendingKill = 'lease_lost';
      earlier.handle?.kill('lease_lost');
    }
    active.set(runId, run);
    try {
      if (takenOverFrom !== undefined) {
        // Its worker stopped (or stalled) mid-run: its sessions may still hold the rollup's lock or
        // commit later. They go before this attempt starts.
        const killed = await threads.killSessions(runId);
        logger.warn(
          { task: task.name, runId, attempt: lease.attempt },
          `run ${runId} taken over from ${takenOverFrom.worker ?? 'a worker'} (attempt ${takenOverFrom.attempt}); ` +
            `${killed} session(s) of it terminated`,
        );
      }
      const limits = ctx.timeLimits?.(task) ?? timeLimitsOf(task, runtime.settings);
      const outcome = await threads.run(
        { type: 'run', runId, task: task.name, args, attempt: lease.attempt },
        { softMs: limits.softSeconds * 1000, hardMs: limits.hardSeconds * 1000 },
        (handle) => {
          run.handle = handle;
          if (run.pendingKill !== undefined) handle.kill(run.pendingKill);
        },
      );
      if (outcome.kind === 'killed' && outcome.reason === 'lease_lost') {
        const message = `run ${runId} attempt ${lease.attempt} stopped: another worker or the reaper took the run`;
        logger.warn({ task: task.name, runId }, message);
        throw new Error(message);
      }
      const { record, bullmq } = outcomeOf(ctx, limits, lease.attempt, maxAttempts, outcome);
      if (!(await finishes.submit({ lease, outcome: record }))) {
        const message = `run ${runId} attempt ${lease.attempt} ended ${record.state}, but the run is no longer this worker's: outcome discarded`;
        logger.warn({ task: task.name, runId }, message);
        throw new Error(message);
      }
      if (record.state === 'succeeded') stats.processed += 1;
      else if (record.state !== 'retrying') stats.failed += 1;
      if (record.state !== 'retrying') {
        await storeResult(
          ctx,
          runId,
          record.state,
          record.state === 'succeeded' ? record.result : record.error,
        );
      }
      logger.debug({ task: task.name, runId }, `run ${runId} ${record.state}`);
      if ('error' in bullmq) throw bullmq.error;
      return bullmq.result;
    } finally {
      if (active.get(runId) === run) active.delete(runId);
    }
  };
}

async function storeResult(
  ctx: ProcessorContext,
  runId: string,
  state: 'succeeded' | 'failed' | 'timed_out' | 'revoked',
  value: unknown,
): Promise<void> {
  await ctx.runtime.resultBackend
    ?.store(runId, state, value)
    .catch((e: unknown) =>
      ctx.logger.warn({ err: e }, 'could not store the result in CELERY_RESULT_BACKEND'),
    );
}
