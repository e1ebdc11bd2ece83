import type { Queryable } from '../db/index.ts';
import type { LogLine } from '../log/index.ts';

/**
 * Terminology
 * - run:     one enqueued execution of a task, a row of aggjobs.task_runs; its id is the BullMQ job id.
 * - attempt: one try of a run; a transient failure retries the same run (attempts counts them).
 * - slot:    one scheduled time of a schedule (e.g. 14:05 for hourly_rollup); beat enqueues it once.
 */
/** Every state of a run, in the order a run goes through them (the CHECK of aggjobs.task_runs). */
export const runStates = [
  'queued',
  'running',
  'succeeded',
  'failed',
  'timed_out',
  'revoked',
  'retrying',
] as const;
export type RunState = (typeof runStates)[number];
export const finalStates: readonly RunState[] = ['succeeded', 'failed', 'timed_out', 'revoked'];
/** The states from which an operator may retry a run (a new run with the same arguments). */
export const retryableStates: readonly RunState[] = ['failed', 'timed_out', 'revoked'];

export interface RunRecord {
  id: string;
  task: string;
  args: Record<string, unknown>;
  state: RunState;
  queue: string;
  worker: string | null;
  attempts: number;
  enqueuedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  durationMs: number | null;
  result: unknown;
  error: string | null;
  /** The error's stack, when the run failed with one. */
  errorStack: string | null;
  /** Lines the task logged during its last attempt (at most 200), when it ran in a worker thread. */
  logs: LogLine[] | null;
  parentId: string | null;
  /** Until when the worker that owns the running attempt holds it (it renews this while it works). */
  leaseExpiresAt: Date | null;
  /** When a queued or retrying run may start (countdown, retry backoff). */
  notBefore: Date | null;
  /** The run this one retried (Control.retry), if it was started by a retry. */
  retryOf: string | null;
}

/** A row of aggjobs.task_runs as node-postgres returns it. */
export interface RunRow {
  id: string;
  task: string;
  args: Record<string, unknown>;
  state: RunState;
  queue: string;
  worker: string | null;
  attempts: number;
  enqueued_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  duration_ms: number | null;
  result: unknown;
  error: string | null;
  error_stack: string | null;
  logs: LogLine[] | null;
  parent_id: string | null;
  lease_token: string | null;
  lease_expires_at: Date | null;
  not_before: Date | null;
  state_changed_at: Date;
  retry_of: string | null;
}

export function toRecord(r: RunRow): RunRecord {
  return {
    id: r.id,
    task: r.task,
    args: r.args,
    state: r.state,
    queue: r.queue,
    worker: r.worker,
    attempts: r.attempts,
    enqueuedAt: r.enqueued_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    durationMs: r.duration_ms,
    result: r.result,
    error: r.error,
    errorStack: r.error_stack,
    logs: r.logs,
    parentId: r.parent_id,
    leaseExpiresAt: r.lease_expires_at,
    notBefore: r.not_before,
    retryOf: r.retry_of,
  };
}

/** A new run, queued. A second insert of the same id (a resent beat slot) changes nothing. */
export async function recordQueued(
  db: Queryable,
  run: {
    id: string;
    task: string;
    args: Record<string, unknown>;
    queue: string;
    parentId?: string;
    /** The run this one retries. */
    retryOf?: string;
    /** Seconds before it may start (a countdown): a resend of a lost job keeps what is left of it. */
    delaySeconds?: number;
  },
): Promise<void> {
  await db.query(
    `INSERT INTO aggjobs.task_runs (id, task, args, state, queue, parent_id, retry_of, not_before)
     VALUES ($1, $2, $3, 'queued', $4, $5, $6, now() + make_interval(secs => $7)) ON CONFLICT (id) DO NOTHING`,
    [
      run.id,
      run.task,
      JSON.stringify(run.args),
      run.queue,
      run.parentId ?? null,
      run.retryOf ?? null,
      run.delaySeconds ?? 0,
    ],
  );
}

/**
 * A job that no enqueue path made (unknown task, arguments its schema refuses) ends as a failed run
 * with the reason, and never runs: a row is created when the job had none.
 */
export async function recordRejected(
  db: Queryable,
  run: { id: string; task: string; args: unknown; queue: string; error: string },
): Promise<void> {
  await db.query(
    `INSERT INTO aggjobs.task_runs AS r (id, task, args, state, queue, error, finished_at)
     VALUES ($1, $2, $3, 'failed', $4, $5, now())
     ON CONFLICT (id) DO UPDATE SET state = 'failed', error = EXCLUDED.error, finished_at = now(),
       state_changed_at = now(), lease_token = NULL, lease_expires_at = NULL
     WHERE r.state IN ('queued', 'retrying') OR (r.state = 'running' AND r.lease_token IS NULL)`,
    [run.id, run.task, JSON.stringify(run.args ?? {}), run.queue, run.error],
  );
}

/** The broker refused the job of a run just recorded as queued: the run failed, and never ran. */
export async function recordEnqueueFailure(db: Queryable, id: string, error: string): Promise<void> {
  await db.query(
    `UPDATE aggjobs.task_runs SET state = 'failed', error = $2, finished_at = now(), state_changed_at = now()
     WHERE id = $1 AND state = 'queued'`,
    [id, error],
  );
}

/** Marks queued runs revoked (they are skipped if a worker takes them). Returns the ids changed. */
export async function revokeQueued(db: Queryable, ids: readonly string[]): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `UPDATE aggjobs.task_runs SET state = 'revoked', finished_at = now(), error = 'revoked before it ran',
            state_changed_at = now(), lease_token = NULL, lease_expires_at = NULL
     WHERE id = ANY($1::text[]) AND state IN ('queued', 'retrying') RETURNING id`,
    [ids],
  );
  return rows.map((r) => r.id);
}

export async function getRun(db: Queryable, id: string): Promise<RunRecord | undefined> {
  const { rows } = await db.query<RunRow>('SELECT * FROM aggjobs.task_runs WHERE id = $1', [id]);
  return rows[0] === undefined ? undefined : toRecord(rows[0]);
}

export interface RunQuery {
  task?: string;
  state?: RunState;
  parentId?: string;
  /** Runs enqueued before this time (paging backwards). */
  before?: Date;
  limit?: number;
}

/** Run history, newest first: what the dashboard lists. */
export async function listRuns(db: Queryable, query: RunQuery = {}): Promise<RunRecord[]> {
  const { rows } = await db.query<RunRow>(
    `SELECT * FROM aggjobs.task_runs
     WHERE ($1::text IS NULL OR task = $1) AND ($2::text IS NULL OR state = $2)
       AND ($3::text IS NULL OR parent_id = $3) AND ($4::timestamptz IS NULL OR enqueued_at < $4)
     ORDER BY enqueued_at DESC, id LIMIT $5`,
    [
      query.task ?? null,
      query.state ?? null,
      query.parentId ?? null,
      query.before ?? null,
      Math.min(query.limit ?? 100, 1000),
    ],
  );
  return rows.map(toRecord);
}

/** Per task: runs by state over the last `hours`, and the last success. */
export async function runStats(
  db: Queryable,
  hours = 24,
): Promise<Array<{ task: string; counts: Partial<Record<RunState, number>>; lastSuccessAt: Date | null }>> {
  const { rows } = await db.query<{
    task: string;
    counts: Partial<Record<RunState, number>>;
    last_success: Date | null;
  }>(
    `SELECT task, jsonb_object_agg(state, n) AS counts,
            (SELECT max(finished_at) FROM aggjobs.task_runs s WHERE s.task = c.task AND s.state = 'succeeded') AS last_success
     FROM (SELECT task, state, count(*) AS n FROM aggjobs.task_runs
           WHERE enqueued_at > now() - make_interval(hours => $1) GROUP BY 1, 2) c
     GROUP BY task ORDER BY task`,
    [hours],
  );
  return rows.map((r) => ({ task: r.task, counts: r.counts, lastSuccessAt: r.last_success }));
}
