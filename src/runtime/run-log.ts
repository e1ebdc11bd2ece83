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
/** Whether a run in this state has yet to end: queued, running or retrying. */
export const isOpenState = (state: string): boolean => !(finalStates as readonly string[]).includes(state);
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
  /** An operator asked to terminate the running attempt (run-ownership.ts). */
  terminate_requested_at: Date | null;
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
  task?: string | undefined;
  state?: RunState | undefined;
  worker?: string | undefined;
  parentId?: string | undefined;
  /** Only runs without a parent: a backfill's window runs are left out (and counted on their parent). */
  topLevel?: boolean | undefined;
  /** Runs enqueued at or after this time. */
  from?: Date | undefined;
  /** Runs enqueued before this time (paging backwards). */
  before?: Date | undefined;
  /** Text searched (case-insensitive) in the id, args, result and error. */
  q?: string | undefined;
  /** At most 1000 (default 100), after skipping `offset`. */
  limit?: number | undefined;
  offset?: number | undefined;
}

/** `%text%` for ILIKE, with the pattern characters of the text escaped. */
function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** Run history, newest first: what the dashboard lists and searches, and `aggjobs control runs`. */
export async function listRuns(db: Queryable, query: RunQuery = {}): Promise<RunRecord[]> {
  // $1 task, $2 state, $3 worker, $4 parent, $5 top-level only, $6 from, $7 before, $8 ILIKE
  // pattern, $9 limit, $10 offset
  const { rows } = await db.query<RunRow>(
    `SELECT * FROM aggjobs.task_runs
     WHERE ($1::text IS NULL OR task = $1) AND ($2::text IS NULL OR state = $2)
       AND ($3::text IS NULL OR worker = $3) AND ($4::text IS NULL OR parent_id = $4)
       AND (NOT $5::boolean OR parent_id IS NULL)
       AND ($6::timestamptz IS NULL OR enqueued_at >= $6) AND ($7::timestamptz IS NULL OR enqueued_at < $7)
       AND ($8::text IS NULL OR id ILIKE $8 OR args::text ILIKE $8 OR result::text ILIKE $8 OR error ILIKE $8)
     ORDER BY enqueued_at DESC, id DESC LIMIT $9 OFFSET $10`,
    [
      query.task ?? null,
      query.state ?? null,
      query.worker ?? null,
      query.parentId ?? null,
      query.topLevel === true,
      query.from ?? null,
      query.before ?? null,
      query.q === undefined || query.q === '' ? null : likePattern(query.q),
      Math.min(query.limit ?? 100, 1000),
      query.offset ?? 0,
    ],
  );
  return rows.map(toRecord);
}

/** How many child runs each of these runs has (a backfill's windows); runs without any are absent. */
export async function childCounts(db: Queryable, parentIds: readonly string[]): Promise<Map<string, number>> {
  if (parentIds.length === 0) return new Map();
  // $1 parent run ids
  const { rows } = await db.query<{ parent_id: string; n: number }>(
    `SELECT parent_id, count(*)::int AS n FROM aggjobs.task_runs WHERE parent_id = ANY($1::text[]) GROUP BY parent_id`,
    [parentIds],
  );
  return new Map(rows.map((r) => [r.parent_id, r.n]));
}

/** Failed and timed-out runs that finished in the last `hours`, newest first. */
export async function recentFailures(db: Queryable, hours: number, limit = 20): Promise<RunRecord[]> {
  // $1 hours, $2 limit
  const { rows } = await db.query<RunRow>(
    `SELECT * FROM aggjobs.task_runs
     WHERE state IN ('failed', 'timed_out') AND finished_at > now() - make_interval(hours => $1)
     ORDER BY finished_at DESC LIMIT $2`,
    [hours, limit],
  );
  return rows.map(toRecord);
}
