/** Arguments a task cannot run with. Raised at enqueue (and again by the worker); never retried. */
export class InvalidTaskArgsError extends Error {
  override readonly name = 'InvalidTaskArgsError';
  constructor(
    readonly task: string,
    readonly problems: ReadonlyArray<{ field: string; message: string }>,
  ) {
    super(`invalid arguments for ${task}: ${problems.map((p) => p.message).join('; ')}`);
  }
}

/** A task ran past its time limit (`soft`: it was asked to stop; `hard`: it was killed). */
export class TaskTimeoutError extends Error {
  override readonly name = 'TaskTimeoutError';
  constructor(
    readonly task: string,
    readonly limit: 'soft' | 'hard',
    readonly seconds: number,
  ) {
    super(`${task} exceeded its ${limit} time limit of ${seconds} s`);
  }
}

/** The task was revoked or terminated by an operator. */
export class TaskRevokedError extends Error {
  override readonly name = 'TaskRevokedError';
  constructor(
    readonly runId: string,
    reason = 'revoked',
  ) {
    super(`run ${runId} was ${reason}`);
  }
}

/** Unknown task name (CLI, API, or a job from a newer version on the queue). */
export class UnknownTaskError extends Error {
  override readonly name = 'UnknownTaskError';
  constructor(
    readonly task: string,
    known: readonly string[],
  ) {
    super(`unknown task ${JSON.stringify(task)}: known tasks are ${known.join(', ')}`);
  }
}
