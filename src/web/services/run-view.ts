import type { RunRecord } from '../../runtime/index.ts';
import type { SecretScrubber } from './secret-scrubber.ts';

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
  parentId: string | null;
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
    parentId: run.parentId,
  };
}
