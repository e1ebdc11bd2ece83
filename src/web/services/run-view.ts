import type { SecretScrubber } from '../../config/index.ts';
import type { RunRecord } from '../../runtime/index.ts';

/** A run as the API returns it: ISO times, secrets scrubbed from args, result and error. */
export interface RunJson {
  id: string;
  task: string;
  state: string;
  queue: string;
  worker: string | null;
  attempts: number;
  enqueuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  args: Record<string, unknown>;
  result: unknown;
  error: string | null;
  errorStack: string | null;
  /** Lines the task logged in its last attempt; null when none were kept (eager runs, killed threads). */
  logs: Array<{ time: string; level: string; msg: string; data?: unknown }> | null;
  parentId: string | null;
  /** While running: until when its worker holds it (renewed while it works; past it, the run is orphaned). */
  leaseExpiresAt: string | null;
  /** While queued or retrying: when it may start (countdown, retry backoff). */
  notBefore: string | null;
  /** The run this one retried, when it was started by Retry. */
  retryOf: string | null;
}

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

export function runJson(run: RunRecord, scrub: SecretScrubber): RunJson {
  return {
    id: run.id,
    task: run.task,
    state: run.state,
    queue: run.queue,
    worker: run.worker,
    attempts: run.attempts,
    enqueuedAt: run.enqueuedAt.toISOString(),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    durationMs: run.durationMs,
    args: scrub.value(run.args),
    result: scrub.value(run.result ?? null),
    error: run.error === null ? null : scrub.text(run.error),
    errorStack: run.errorStack === null ? null : scrub.text(run.errorStack),
    logs:
      run.logs === null
        ? null
        : run.logs.map((l) => ({
            time: l.time,
            level: l.level,
            msg: scrub.text(l.msg),
            ...(l.data === undefined ? {} : { data: scrub.value(l.data) }),
          })),
    parentId: run.parentId,
    leaseExpiresAt: iso(run.leaseExpiresAt),
    notBefore: iso(run.notBefore),
    retryOf: run.retryOf,
  };
}
