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
