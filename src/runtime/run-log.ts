import type { Pool, Queryable } from '../db/index.ts';
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
  };
}

/** A new run, queued. A second insert of the same id (a resent beat slot) changes nothing. */
export async function recordQueued(
  db: Queryable,
  run: { id: string; task: string; args: Record<string, unknown>; queue: string; parentId?: string },
): Promise<void> {
  await db.query(
    `INSERT INTO aggjobs.task_runs (id, task, args, state, queue, parent_id)
     VALUES ($1, $2, $3, 'queued', $4, $5) ON CONFLICT (id) DO NOTHING`,
    [run.id, run.task, JSON.stringify(run.args), run.queue, run.parentId ?? null],
  );
}

export type Claim =
  { kind: 'run'; attempts: number; resumed: boolean } | { kind: 'skip'; state: RunState; result: unknown };

/**
 * A worker takes a run: queued or retrying → running. A run found `running` was left by a worker
 * that died (BullMQ handed the stalled job to us): it is taken over (`resumed`). A revoked or
 * finished run is skipped. A job without a row (added by another tool) gets one.
 */
export async function claimRun(
  pool: Pool,
  run: { id: string; task: string; args: Record<string, unknown>; queue: string; worker: string },
): Promise<Claim> {
  const { rows } = await pool.query<{
    state: RunState;
    attempts: number;
    result: unknown;
    claimed: boolean;
    prior: RunState;
  }>(
    `WITH prior AS (
       SELECT state FROM aggjobs.task_runs WHERE id = $1 FOR UPDATE
     ), up AS (
       UPDATE aggjobs.task_runs SET state = 'running', worker = $5, attempts = attempts + 1,
              started_at = now(), finished_at = NULL, duration_ms = NULL, error = NULL
       WHERE id = $1 AND state IN ('queued', 'retrying', 'running')
       RETURNING state, attempts, result
     ), ins AS (
       INSERT INTO aggjobs.task_runs (id, task, args, state, queue, worker, attempts, started_at)
       SELECT $1, $2, $3, 'running', $4, $5, 1, now() WHERE NOT EXISTS (SELECT 1 FROM prior)
       ON CONFLICT (id) DO NOTHING
       RETURNING state, attempts, result
     )
     SELECT state, attempts, result, true AS claimed, (SELECT state FROM prior) AS prior FROM up
     UNION ALL SELECT state, attempts, result, true, NULL FROM ins
     UNION ALL SELECT r.state, r.attempts, r.result, false, r.state FROM aggjobs.task_runs r
       WHERE r.id = $1 AND NOT EXISTS (SELECT 1 FROM up) AND NOT EXISTS (SELECT 1 FROM ins)`,
    [run.id, run.task, JSON.stringify(run.args), run.queue, run.worker],
  );
  const row = rows[0];
  if (row === undefined) return { kind: 'run', attempts: 1, resumed: false };
  if (!row.claimed) return { kind: 'skip', state: row.state, result: row.result };
  return { kind: 'run', attempts: row.attempts, resumed: row.prior === 'running' };
}

/** The run ended: its final state, result or error, and duration. */
export async function finishRun(
  db: Queryable,
  id: string,
  outcome: {
    state: Exclude<RunState, 'queued' | 'running'>;
    result?: unknown;
    error?: string;
    errorStack?: string;
    logs?: LogLine[];
  },
): Promise<void> {
  await db.query(
    `UPDATE aggjobs.task_runs
     SET state = $2, result = coalesce($3::jsonb, result), error = $4, error_stack = $5,
         logs = coalesce($6::jsonb, logs),
         finished_at = CASE WHEN $2 = 'retrying' THEN NULL ELSE now() END,
         duration_ms = CASE WHEN started_at IS NULL THEN NULL
                            ELSE (extract(epoch FROM now() - started_at) * 1000)::integer END
     WHERE id = $1`,
    [
      id,
      outcome.state,
      outcome.result === undefined ? null : JSON.stringify(outcome.result),
      outcome.error ?? null,
      outcome.errorStack ?? null,
      outcome.logs === undefined ? null : JSON.stringify(outcome.logs),
    ],
  );
}

/** Marks queued runs revoked (they are skipped if a worker takes them). Returns the ids changed. */
export async function revokeQueued(db: Queryable, ids: readonly string[]): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `UPDATE aggjobs.task_runs SET state = 'revoked', finished_at = now(), error = 'revoked before it ran'
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
