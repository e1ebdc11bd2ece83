import { randomUUID } from 'node:crypto';
import { withTransaction, type Pool, type Queryable } from '../db/index.ts';
import type { LogLine } from '../log/index.ts';
import { isOpenState, type RunState } from './run-log.ts';

/**
 * Terminology
 * - owner:  the worker working on a run's current attempt. It holds a lease (token + expiry) that it
 *           renews; every write of the attempt's outcome names the token, so a worker that lost the
 *           run (stalled, partitioned, taken over) writes nothing.
 * - takeover: BullMQ handed the job of a `running` run to another worker (the owner stopped renewing
 *           BullMQ's lock): the new worker gets a new token, the old attempt's sessions are killed.
 */
export interface Lease {
  readonly runId: string;
  readonly token: string;
  readonly attempt: number;
}

export type Claim =
  | {
      kind: 'run';
      lease: Lease;
      /** The attempt this one replaces, when the run was taken over from another worker. */
      takenOverFrom: { worker: string | null; attempt: number } | undefined;
    }
  | { kind: 'skip'; state: RunState; result: unknown }
  /** Its last attempt died with its worker: the claim marked the run failed. */
  | { kind: 'exhausted'; error: string };

interface ClaimedRow {
  state: RunState;
  attempts: number;
  result: unknown;
  worker: string | null;
  lease_token: string | null;
}

/**
 * A worker takes a run: queued or retrying → running, with a new lease. A run found `running` is
 * taken over (BullMQ decided its owner is gone). A run whose attempts are used up is failed instead
 * of started again; a revoked or finished run is skipped. A job without a row (added by another
 * tool, after validation) gets one.
 */
export async function claimRun(
  pool: Pool,
  run: {
    id: string;
    task: string;
    args: Record<string, unknown>;
    queue: string;
    worker: string;
    maxAttempts: number;
    leaseMs: number;
  },
): Promise<Claim> {
  const token = randomUUID();
  return await withTransaction(pool, async (client) => {
    const { rows } = await client.query<ClaimedRow>(
      `SELECT state, attempts, result, worker, lease_token FROM aggjobs.task_runs WHERE id = $1 FOR UPDATE`,
      [run.id],
    );
    const prior = rows[0];
    if (prior === undefined) {
      await client.query(
        `INSERT INTO aggjobs.task_runs (id, task, args, state, queue, worker, attempts, started_at,
                                        lease_token, lease_expires_at)
         VALUES ($1, $2, $3, 'running', $4, $5, 1, now(), $6, now() + make_interval(secs => $7))`,
        [run.id, run.task, JSON.stringify(run.args), run.queue, run.worker, token, run.leaseMs / 1000],
      );
      return { kind: 'run', lease: { runId: run.id, token, attempt: 1 }, takenOverFrom: undefined };
    }
    if (!isOpenState(prior.state)) {
      return { kind: 'skip', state: prior.state, result: prior.result };
    }
    // A running run without a lease is a parent waiting for its children (a backfill): no owner to
    // take over from.
    const takenOver = prior.state === 'running' && prior.lease_token !== null;
    if (prior.attempts >= run.maxAttempts) {
      const error = takenOver
        ? `its worker ${prior.worker ?? '?'} stopped during the last attempt (${prior.attempts} of ${run.maxAttempts}): not started again`
        : `no attempt left (${prior.attempts} of ${run.maxAttempts})`;
      await client.query(
        `UPDATE aggjobs.task_runs
         SET state = 'failed', error = $2, finished_at = now(), state_changed_at = now(),
             lease_token = NULL, lease_expires_at = NULL,
             duration_ms = CASE WHEN started_at IS NULL THEN NULL
                                ELSE (extract(epoch FROM now() - started_at) * 1000)::integer END
         WHERE id = $1`,
        [run.id, error],
      );
      return { kind: 'exhausted', error };
    }
    const { rows: updated } = await client.query<{ attempts: number }>(
      `UPDATE aggjobs.task_runs
       SET state = 'running', worker = $2, attempts = attempts + 1, lease_token = $3, terminate_requested_at = NULL,
           lease_expires_at = now() + make_interval(secs => $4), not_before = NULL,
           started_at = CASE WHEN state = 'running' AND lease_token IS NULL THEN coalesce(started_at, now())
                             ELSE now() END,
           state_changed_at = CASE WHEN state = 'running' THEN state_changed_at ELSE now() END,
           finished_at = NULL, duration_ms = NULL, error = NULL
       WHERE id = $1 RETURNING attempts`,
      [run.id, run.worker, token, run.leaseMs / 1000],
    );
    const attempt = updated[0]?.attempts ?? prior.attempts + 1;
    return {
      kind: 'run',
      lease: { runId: run.id, token, attempt },
      takenOverFrom: takenOver ? { worker: prior.worker, attempt: prior.attempts } : undefined,
    };
  });
}

interface RecordedClaimRow extends ClaimedRow {
  id: string;
  args: Record<string, unknown>;
  /** The run's attempts after the claim; null when the statement did not claim it. */
  claimed_attempts: number | null;
}

/** A run an enqueue path recorded, to be claimed by `worker` (claimRecordedRuns). */
export interface RecordedClaimRequest {
  id: string;
  worker: string;
  maxAttempts: number;
  leaseMs: number;
}

/** What claimRecordedRuns found for one run: its claim (undefined: fall back to claimRun) and args. */
export interface RecordedClaim {
  claim: Claim | undefined;
  args: Record<string, unknown> | undefined;
}

/**
 * `claimRun` in one statement for runs recorded by an enqueue path (the usual case), several at once:
 * each row is locked, read (its arguments are the authority on what runs) and, when it is queued,
 * retrying or running with attempts left, taken with a new lease — one round trip for all of them
 * instead of a SELECT of the arguments and a four-statement transaction each. The same rules as
 * `claimRun`: a finished or revoked run is skipped, a running one with a lease is taken over. `claim`
 * is undefined when the run has no row (a job another tool made: validate its arguments, then
 * `claimRun`) or has no attempt left (`claimRun` fails it under its own lock): the caller falls back
 * to `claimRun`. The ids must be distinct (one row cannot be claimed twice in one statement).
 */
export async function claimRecordedRuns(
  db: Queryable,
  runs: readonly RecordedClaimRequest[],
): Promise<RecordedClaim[]> {
  const tokens = runs.map(() => randomUUID());
  // `prior` locks the rows (in id order, so two workers' batches cannot deadlock) and keeps the
  // values they had before this statement (every part of a statement sees the same snapshot);
  // `claimed` reads `prior`, so a row is locked before it is updated, and its guard repeats
  // claimRun's. A concurrent claim waits on the lock, then sees this one's lease.
  const { rows } = await db.query<RecordedClaimRow>({
    name: 'aggjobs-claim-recorded-runs',
    text: `WITH req AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::integer[])
                     AS q(id, worker, token, lease_secs, max_attempts)
     ), prior AS MATERIALIZED (
       SELECT r.id, r.state, r.attempts, r.result, r.worker, r.lease_token, r.args
       FROM aggjobs.task_runs r WHERE r.id IN (SELECT id FROM req) ORDER BY r.id FOR UPDATE
     ), claimed AS (
       UPDATE aggjobs.task_runs r
       SET state = 'running', worker = q.worker, attempts = r.attempts + 1, lease_token = q.token,
           terminate_requested_at = NULL, lease_expires_at = now() + make_interval(secs => q.lease_secs),
           not_before = NULL,
           started_at = CASE WHEN r.state = 'running' AND r.lease_token IS NULL THEN coalesce(r.started_at, now())
                             ELSE now() END,
           state_changed_at = CASE WHEN r.state = 'running' THEN r.state_changed_at ELSE now() END,
           finished_at = NULL, duration_ms = NULL, error = NULL
       FROM prior p JOIN req q ON q.id = p.id
       WHERE r.id = p.id AND p.state IN ('queued', 'retrying', 'running') AND p.attempts < q.max_attempts
       RETURNING r.id, r.attempts
     )
     SELECT p.id, p.state, p.attempts, p.result, p.worker, p.lease_token, p.args, c.attempts AS claimed_attempts
     FROM prior p LEFT JOIN claimed c ON c.id = p.id`,
    values: [
      runs.map((r) => r.id),
      runs.map((r) => r.worker),
      tokens,
      runs.map((r) => r.leaseMs / 1000),
      runs.map((r) => r.maxAttempts),
    ],
  });
  const found = new Map(rows.map((row) => [row.id, row]));
  return runs.map((run, i): RecordedClaim => {
    const prior = found.get(run.id);
    if (prior === undefined) return { claim: undefined, args: undefined };
    if (!isOpenState(prior.state)) {
      return { claim: { kind: 'skip', state: prior.state, result: prior.result }, args: prior.args };
    }
    if (prior.claimed_attempts === null) return { claim: undefined, args: prior.args };
    const takenOver = prior.state === 'running' && prior.lease_token !== null;
    return {
      claim: {
        kind: 'run',
        lease: { runId: run.id, token: tokens[i] ?? '', attempt: prior.claimed_attempts },
        takenOverFrom: takenOver ? { worker: prior.worker, attempt: prior.attempts } : undefined,
      },
      args: prior.args,
    };
  });
}

/**
 * Renews the leases a worker holds. Returns the runs whose lease it no longer holds (taken over,
 * settled by the reaper, or revoked), whose attempts must stop at once and write nothing, and those
 * an operator asked to terminate.
 */
export async function renewLeases(
  db: Queryable,
  leases: readonly Lease[],
  leaseMs: number,
): Promise<{ lost: string[]; terminate: string[] }> {
  if (leases.length === 0) return { lost: [], terminate: [] };
  const { rows } = await db.query<{ id: string; terminate: boolean }>(
    `UPDATE aggjobs.task_runs r SET lease_expires_at = now() + make_interval(secs => $3)
     FROM unnest($1::text[], $2::text[]) AS o(id, token)
     WHERE r.id = o.id AND r.lease_token = o.token AND r.state = 'running'
     RETURNING r.id, r.terminate_requested_at IS NOT NULL AS terminate`,
    [leases.map((l) => l.runId), leases.map((l) => l.token), leaseMs / 1000],
  );
  const held = new Set(rows.map((r) => r.id));
  return {
    lost: leases.filter((l) => !held.has(l.runId)).map((l) => l.runId),
    terminate: rows.filter((r) => r.terminate).map((r) => r.id),
  };
}

/** An operator asks to terminate a running run; false when it is not running. */
export async function requestTermination(db: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE aggjobs.task_runs SET terminate_requested_at = now() WHERE id = $1 AND state = 'running'`,
    [id],
  );
  return rowCount === 1;
}

export type AttemptOutcome = {
  state: 'succeeded' | 'failed' | 'timed_out' | 'revoked' | 'retrying';
  result?: unknown;
  error?: string;
  errorStack?: string;
  logs?: LogLine[];
  /** For `retrying`: milliseconds until the next attempt may start. */
  retryInMs?: number;
};

/**
 * Records how an attempt ended, if `lease` still owns the run; false when it does not (another
 * worker took it over, the reaper settled it, an operator revoked it): the outcome is discarded.
 */
export async function finishAttempt(db: Queryable, lease: Lease, outcome: AttemptOutcome): Promise<boolean> {
  const [recorded] = await finishAttempts(db, [{ lease, outcome }]);
  return recorded === true;
}

/**
 * `finishAttempt` for several attempts in one statement; per attempt, whether its outcome was
 * recorded. The runs must be distinct.
 */
export async function finishAttempts(
  db: Queryable,
  attempts: readonly { lease: Lease; outcome: AttemptOutcome }[],
): Promise<boolean[]> {
  const json = (value: unknown): string | null => (value === undefined ? null : JSON.stringify(value));
  const { rows } = await db.query<{ id: string }>({
    name: 'aggjobs-finish-attempts',
    text: `UPDATE aggjobs.task_runs r
     SET state = o.state, result = coalesce(o.result::jsonb, r.result), error = o.error,
         error_stack = o.error_stack, logs = coalesce(o.logs::jsonb, r.logs), lease_token = NULL,
         lease_expires_at = NULL, state_changed_at = now(),
         not_before = CASE WHEN o.state = 'retrying' THEN now() + make_interval(secs => o.retry_secs) END,
         finished_at = CASE WHEN o.state = 'retrying' THEN NULL ELSE now() END,
         duration_ms = CASE WHEN r.started_at IS NULL THEN NULL
                            ELSE (extract(epoch FROM now() - r.started_at) * 1000)::integer END
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::float8[])
          AS o(id, token, state, result, error, error_stack, logs, retry_secs)
     WHERE r.id = o.id AND r.lease_token = o.token AND r.state = 'running'
     RETURNING r.id`,
    values: [
      attempts.map((a) => a.lease.runId),
      attempts.map((a) => a.lease.token),
      attempts.map((a) => a.outcome.state),
      attempts.map((a) => json(a.outcome.result)),
      attempts.map((a) => a.outcome.error ?? null),
      attempts.map((a) => a.outcome.errorStack ?? null),
      attempts.map((a) => json(a.outcome.logs)),
      attempts.map((a) => (a.outcome.retryInMs ?? 0) / 1000),
    ],
  });
  const recorded = new Set(rows.map((row) => row.id));
  return attempts.map((a) => recorded.has(a.lease.runId));
}

/**
 * The reaper's transitions of a run whose owner is gone (lease expired): `failed` with the reason,
 * or `retrying` (its job is sent again). Fenced by the expired lease it saw: a renewal or a takeover
 * in between wins.
 */
export async function settleOrphan(
  db: Queryable,
  run: { id: string; token: string },
  outcome: { state: 'failed' | 'retrying'; error: string },
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE aggjobs.task_runs
     SET state = $3, error = $4, lease_token = NULL, lease_expires_at = NULL, state_changed_at = now(),
         not_before = CASE WHEN $3 = 'retrying' THEN now() END,
         finished_at = CASE WHEN $3 = 'retrying' THEN NULL ELSE now() END,
         duration_ms = CASE WHEN started_at IS NULL THEN NULL
                            ELSE (extract(epoch FROM now() - started_at) * 1000)::integer END
     WHERE id = $1 AND lease_token = $2 AND state = 'running' AND lease_expires_at < now()`,
    [run.id, run.token, outcome.state, outcome.error],
  );
  return rowCount === 1;
}

/** A queued or retrying run may start now (an operator promoted it); false when it is neither. */
export async function promoteRun(db: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE aggjobs.task_runs SET not_before = now() WHERE id = $1 AND state IN ('queued', 'retrying')`,
    [id],
  );
  return rowCount === 1;
}

/** An operator ends a running run whose owner is gone (expired lease): revoked, fenced by that lease. */
export async function revokeOrphan(db: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE aggjobs.task_runs
     SET state = 'revoked', error = 'terminated by an operator; its worker had stopped',
         finished_at = now(), state_changed_at = now(), lease_token = NULL, lease_expires_at = NULL
     WHERE id = $1 AND state = 'running' AND lease_expires_at < now()`,
    [id],
  );
  return rowCount === 1;
}
