import type { Logger } from '../log/index.ts';
import type { QueueName } from '../tasks/index.ts';
import { settleOrphan } from './run-ownership.ts';
import { terminateRunSessions } from './run-sessions.ts';
import type { Runtime } from './runtime.ts';

export interface ReaperOptions {
  queues: readonly QueueName[];
  /** How old a queued or retrying run's state must be before its missing job counts as lost. */
  lostJobGraceSeconds: number;
  logger: Logger;
}

/** A job's state in the broker (BullMQ's names), or `missing`. */
type JobState = string;

/** States in which the broker still holds a job that a worker will take (or takes over). */
const PENDING_JOB_STATES: ReadonlySet<string> = new Set([
  'waiting',
  'delayed',
  'prioritized',
  'active',
  'waiting-children',
]);

/**
 * Settles the runs the broker and aggjobs.task_runs disagree on, so that no run stays `queued`,
 * `retrying` or `running` without a job or an owner:
 * - `running` with an expired lease (its worker is gone) whose job the broker no longer offers to
 *   anyone: failed when the broker gave up on it (the reason mirrored, e.g. "job stalled more than
 *   allowable limit") or when no attempt is left, otherwise retrying with its job sent again. While
 *   the job still waits or is active, BullMQ's stall check hands it to a worker, which takes it over.
 * - `queued` or `retrying` whose job the broker lost (Redis restarted without persistence, or evicted
 *   it), or a parent run waiting for its children (running without a lease) whose job was lost: the
 *   job is sent again under the same id, with the delay it had left.
 * Every worker runs it; transitions are fenced and job ids dedupe, so two reapers at once are safe.
 */
export async function reapRuns(runtime: Runtime, options: ReaperOptions): Promise<number> {
  const { pool, broker } = runtime;
  const logger = options.logger;
  const maxAttempts = runtime.settings.taskMaxRetries + 1;
  let settled = 0;

  const jobState = async (queue: QueueName, id: string): Promise<{ state: JobState; reason: string }> => {
    const job = await broker.queue(queue).getJob(id);
    if (job === undefined) return { state: 'missing', reason: '' };
    return { state: await job.getState(), reason: job.failedReason ?? '' };
  };
  const resend = async (
    queue: QueueName,
    run: { id: string; task: string; args: Record<string, unknown> },
    delayMs: number,
    stale: boolean,
  ): Promise<void> => {
    const task = runtime.tasks.get(run.task);
    if (task === undefined) return;
    if (stale)
      await broker
        .queue(queue)
        .remove(run.id)
        .catch(() => undefined);
    await runtime.addJob(task, run.args, run.id, delayMs);
  };

  const orphans = await pool.query<{
    id: string;
    task: string;
    queue: QueueName;
    args: Record<string, unknown>;
    attempts: number;
    worker: string | null;
    lease_token: string;
  }>(
    `SELECT id, task, queue, args, attempts, worker, lease_token FROM aggjobs.task_runs
     WHERE state = 'running' AND lease_expires_at < now() AND queue = ANY($1::text[])
     ORDER BY lease_expires_at LIMIT 200`,
    [options.queues],
  );
  for (const run of orphans.rows) {
    const { state, reason } = await jobState(run.queue, run.id);
    if (PENDING_JOB_STATES.has(state)) continue;
    // Its worker is gone, but a session of it may still wait on a lock and commit when it goes.
    await terminateRunSessions(pool, run.id, run.attempts);
    const who = `its worker ${run.worker ?? '?'} stopped during attempt ${run.attempts}`;
    const fenced = { id: run.id, token: run.lease_token };
    if (state === 'failed') {
      if (
        await settleOrphan(pool, fenced, {
          state: 'failed',
          error: `the broker gave up on it (${reason}); ${who}`,
        })
      ) {
        settled += 1;
        logger.warn(
          { runId: run.id, task: run.task },
          `run ${run.id} failed: the broker gave up on it (${reason})`,
        );
      }
      continue;
    }
    const lost = state === 'missing' ? 'the broker lost its job' : `its job is ${state}`;
    if (run.attempts >= maxAttempts) {
      const error = `${who}, the last of ${maxAttempts}, and ${lost}`;
      if (await settleOrphan(pool, fenced, { state: 'failed', error })) {
        settled += 1;
        logger.warn({ runId: run.id, task: run.task }, `run ${run.id} failed: ${error}`);
      }
      continue;
    }
    if (await settleOrphan(pool, fenced, { state: 'retrying', error: `${who} and ${lost}: sent again` })) {
      await resend(run.queue, run, 0, state !== 'missing');
      settled += 1;
      logger.warn({ runId: run.id, task: run.task }, `run ${run.id}: ${who} and ${lost}: sent again`);
    }
  }

  const waiting = await pool.query<{
    id: string;
    task: string;
    queue: QueueName;
    /** `running` without a lease: a parent (backfill) whose children run. */
    state: 'queued' | 'retrying' | 'running';
    args: Record<string, unknown>;
    delay_ms: number;
  }>(
    `SELECT id, task, queue, state, args,
            greatest(0, extract(epoch FROM coalesce(not_before, now()) - now()) * 1000)::integer AS delay_ms
     FROM aggjobs.task_runs
     WHERE (state IN ('queued', 'retrying') OR (state = 'running' AND lease_token IS NULL))
       AND queue = ANY($1::text[]) AND state_changed_at < now() - make_interval(secs => $2)
     ORDER BY state_changed_at LIMIT 200`,
    [options.queues, options.lostJobGraceSeconds],
  );
  for (const run of waiting.rows) {
    const { state } = await jobState(run.queue, run.id);
    if (PENDING_JOB_STATES.has(state)) continue;
    // A finished job of a run that still waits: its retry was never scheduled by the broker.
    await resend(run.queue, run, run.delay_ms, state !== 'missing');
    settled += 1;
    logger.warn(
      { task: run.task, runId: run.id },
      `run ${run.id} was ${run.state} but the broker ${state === 'missing' ? 'had lost its job' : `had its job ${state}`}: sent again` +
        (run.delay_ms > 0 ? ` (due in ${Math.round(run.delay_ms / 1000)} s)` : ''),
    );
  }
  return settled;
}
