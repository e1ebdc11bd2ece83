import { randomUUID } from 'node:crypto';
import type { Settings } from '../config/index.ts';
import type { Pool } from '../db/index.ts';
import type { Logger } from '../log/index.ts';
import { builtinTaskSet, findTask, parseTaskArgs, timeLimitsOf, type TaskSet } from '../tasks/index.ts';
import { TaskFailedError } from './async-result.ts';
import { getRun, recordQueued } from './run-log.ts';
import { claimRun, finishAttempt, renewLeases } from './run-ownership.ts';
import { executeTask } from './task-executor.ts';

/** How long an eager run's lease lasts without renewal. */
const EAGER_LEASE_MS = 30_000;

/**
 * Runs a task in this process, without a broker (Celery's `task_always_eager`, `aggjobs run --eager`).
 * The run is recorded in aggjobs.task_runs like any other. The soft time limit applies (the task's
 * signal fires); there is no hard limit in-process.
 */
export async function runEagerly(
  env: { settings: Settings; pool: Pool; logger: Logger; tasks?: TaskSet; now?: () => Date },
  name: string,
  input: { args?: readonly unknown[]; kwargs?: Record<string, unknown> },
  parentId?: string,
): Promise<{ runId: string; result: unknown }> {
  const tasks = env.tasks ?? builtinTaskSet();
  const task = findTask(tasks, name);
  const args = parseTaskArgs(task, input, { settings: env.settings, now: (env.now ?? (() => new Date()))() });
  const runId = randomUUID();
  await recordQueued(env.pool, { id: runId, task: task.name, args, queue: task.queue, parentId });
  for (const child of (await task.expand?.({ pool: env.pool, settings: env.settings }, args)) ?? []) {
    await runEagerly(env, child.task, { kwargs: child.args }, runId).catch(() => undefined);
  }
  const claim = await claimRun(env.pool, {
    id: runId,
    task: task.name,
    args,
    queue: task.queue,
    worker: 'eager',
    maxAttempts: 1,
    leaseMs: EAGER_LEASE_MS,
  });
  if (claim.kind !== 'run') throw new Error(`run ${runId} could not be claimed`);
  const { lease } = claim;
  // The lease is renewed while the task runs in this process: if the process dies, the reaper of a
  // worker settles the run instead of leaving it `running` for ever.
  const renewal = setInterval(
    () => void renewLeases(env.pool, [lease], EAGER_LEASE_MS).catch(() => undefined),
    EAGER_LEASE_MS / 3,
  );
  const controller = new AbortController();
  const limits = timeLimitsOf(task, env.settings);
  const timer = setTimeout(() => controller.abort(new Error('soft time limit')), limits.softSeconds * 1000);
  try {
    const outcome = await executeTask({
      task,
      args,
      pool: env.pool,
      settings: env.settings,
      logger: env.logger,
      signal: controller.signal,
      runId,
      attempt: lease.attempt,
      broker: undefined,
      now: env.now,
    });
    if (outcome.ok) {
      await finishAttempt(env.pool, lease, { state: 'succeeded', result: outcome.result });
      return { runId, result: outcome.result };
    }
    const state = controller.signal.aborted ? 'timed_out' : 'failed';
    await finishAttempt(env.pool, lease, {
      state,
      error: outcome.error.message,
      result: outcome.error.result,
      ...(outcome.error.stack === undefined ? {} : { errorStack: outcome.error.stack }),
    });
    const run = await getRun(env.pool, runId);
    throw run === undefined ? new Error(outcome.error.message) : new TaskFailedError(run);
  } finally {
    clearTimeout(timer);
    clearInterval(renewal);
  }
}
