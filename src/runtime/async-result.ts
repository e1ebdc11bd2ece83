import type { Pool } from '../db/index.ts';
import { finalStates, getRun, type RunRecord, type RunState } from './run-log.ts';

/** The run ended in failed, timed_out or revoked: `get()` throws this (Celery re-raises the task's error). */
export class TaskFailedError extends Error {
  override readonly name = 'TaskFailedError';
  constructor(readonly run: RunRecord) {
    super(`${run.task} run ${run.id} ${run.state.replace('_', ' ')}: ${run.error ?? 'no error recorded'}`);
  }
}

/** `get({ timeout })` gave up waiting (the run goes on). */
export class ResultTimeoutError extends Error {
  override readonly name = 'ResultTimeoutError';
  constructor(
    readonly runId: string,
    readonly seconds: number,
  ) {
    super(`run ${runId} did not finish within ${seconds} s`);
  }
}

/** A handle on an enqueued run (Celery's AsyncResult). Results come from the durable run history. */
export class AsyncResult<R = unknown> {
  constructor(
    readonly id: string,
    readonly task: string,
    private readonly pool: Pool,
  ) {}

  async state(): Promise<RunState | undefined> {
    return (await getRun(this.pool, this.id))?.state;
  }

  async ready(): Promise<boolean> {
    const state = await this.state();
    return state !== undefined && finalStates.includes(state);
  }

  /** The run's record in aggjobs.task_runs. */
  async info(): Promise<RunRecord | undefined> {
    return await getRun(this.pool, this.id);
  }

  /**
   * Waits for the run to finish and returns its result; throws TaskFailedError when it failed, timed
   * out or was revoked, ResultTimeoutError after `timeout` seconds (default: wait for ever).
   */
  async get(options: { timeout?: number; interval?: number } = {}): Promise<R> {
    const deadline = options.timeout === undefined ? Infinity : Date.now() + options.timeout * 1000;
    const interval = Math.max(0.05, options.interval ?? 0.2) * 1000;
    for (;;) {
      const run = await getRun(this.pool, this.id);
      if (run !== undefined && finalStates.includes(run.state)) {
        if (run.state === 'succeeded') return run.result as R;
        throw new TaskFailedError(run);
      }
      if (Date.now() >= deadline) throw new ResultTimeoutError(this.id, options.timeout ?? 0);
      await new Promise((r) => setTimeout(r, Math.min(interval, Math.max(0, deadline - Date.now()))));
    }
  }
}
