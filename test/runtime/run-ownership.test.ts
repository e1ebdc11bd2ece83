/**
 * The batched claim and finish statements (a worker's slots share them, statement-batcher.ts): in one
 * statement each run gets what a claim or finish of it alone would give — claimed, skipped, taken
 * over, left to claimRun, or fenced out — with the lease it was given, and nothing else changes.
 */
import { describe, expect, it } from 'vitest';
import { claimRecordedRuns, finishAttempts } from '../../src/runtime/run-ownership.ts';
import { createTestDatabase } from '../support/database.ts';

const db = await createTestDatabase();

interface RunRow {
  id: string;
  state: string;
  attempts: number;
  worker: string | null;
  lease_token: string | null;
  result: unknown;
  error: string | null;
  finished_at: Date | null;
  not_before: Date | null;
}

async function rowsOf(ids: string[]): Promise<Map<string, RunRow>> {
  const { rows } = await db.pool.query<RunRow>(
    `SELECT id, state, attempts, worker, lease_token, result, error, finished_at, not_before
     FROM aggjobs.task_runs WHERE id = ANY($1)`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r]));
}

describe('claimRecordedRuns and finishAttempts, several runs in one statement', () => {
  it('claim each run as alone, then record each outcome fenced by its own lease', async () => {
    const p = `own-${Date.now()}`;
    await db.pool.query(
      `INSERT INTO aggjobs.task_runs (id, task, args, state, queue, attempts, worker, lease_token, lease_expires_at, result)
       VALUES ($1 || '-queued',   'health_check', '{"a":1}', 'queued',    'maintenance', 0, NULL, NULL, NULL, NULL),
              ($1 || '-retrying', 'health_check', '{"a":2}', 'retrying',  'maintenance', 1, 'w0', NULL, NULL, NULL),
              ($1 || '-running',  'health_check', '{"a":3}', 'running',   'maintenance', 1, 'dead', 'old-token', now() - interval '1 s', NULL),
              ($1 || '-done',     'health_check', '{"a":4}', 'succeeded', 'maintenance', 1, 'w0', NULL, NULL, '{"ok":true}'),
              ($1 || '-spent',    'health_check', '{"a":5}', 'retrying',  'maintenance', 3, 'w0', NULL, NULL, NULL)`,
      [p],
    );
    const ids = ['queued', 'retrying', 'running', 'done', 'spent', 'missing'].map((s) => `${p}-${s}`);
    const claims = await claimRecordedRuns(
      db.pool,
      ids.map((id) => ({ id, worker: 'w1', maxAttempts: 3, leaseMs: 30_000 })),
    );
    const [queued, retrying, running, done, spent, missing] = claims;

    expect(queued?.args).toEqual({ a: 1 });
    expect(queued?.claim).toMatchObject({ kind: 'run', lease: { runId: ids[0], attempt: 1 } });
    expect(queued?.claim).toMatchObject({ takenOverFrom: undefined });
    expect(retrying?.claim).toMatchObject({ kind: 'run', lease: { attempt: 2 }, takenOverFrom: undefined });
    expect(running?.claim).toMatchObject({
      kind: 'run',
      lease: { attempt: 2 },
      takenOverFrom: { worker: 'dead', attempt: 1 },
    });
    expect(done).toEqual({
      claim: { kind: 'skip', state: 'succeeded', result: { ok: true } },
      args: { a: 4 },
    });
    // No attempt left: claimRun fails it under its own lock; no row: claimRun validates and inserts.
    expect(spent).toEqual({ claim: undefined, args: { a: 5 } });
    expect(missing).toEqual({ claim: undefined, args: undefined });

    const tokens = claims.map((c) => (c.claim?.kind === 'run' ? c.claim.lease.token : undefined));
    expect(new Set(tokens.filter((t) => t !== undefined)).size).toBe(3);
    let rows = await rowsOf(ids);
    for (const [i, state] of [
      [0, 'running'],
      [1, 'running'],
      [2, 'running'],
    ] as const) {
      const row = rows.get(ids[i] ?? '');
      expect(row?.state).toBe(state);
      expect(row?.worker).toBe('w1');
      expect(row?.lease_token).toBe(tokens[i]);
    }
    expect(rows.get(ids[3] ?? '')).toMatchObject({ state: 'succeeded', attempts: 1, worker: 'w0' });
    expect(rows.get(ids[4] ?? '')).toMatchObject({ state: 'retrying', attempts: 3, worker: 'w0' });

    // The finishes: two hold their lease; the third's lease was taken by a newer claim meanwhile.
    const lease = (i: number) => {
      const c = claims[i]?.claim;
      if (c?.kind !== 'run') throw new Error(`run ${i} was not claimed`);
      return c.lease;
    };
    const [retaken] = await claimRecordedRuns(db.pool, [
      { id: ids[2] ?? '', worker: 'w2', maxAttempts: 3, leaseMs: 30_000 },
    ]);
    expect(retaken?.claim).toMatchObject({ kind: 'run', lease: { attempt: 3 } });
    const recorded = await finishAttempts(db.pool, [
      { lease: lease(0), outcome: { state: 'succeeded', result: { rows: 7 }, logs: [] } },
      { lease: lease(1), outcome: { state: 'retrying', error: 'deadlock', retryInMs: 60_000 } },
      { lease: lease(2), outcome: { state: 'succeeded', result: { stale: true } } },
    ]);
    expect(recorded).toEqual([true, true, false]);
    rows = await rowsOf(ids);
    expect(rows.get(ids[0] ?? '')).toMatchObject({
      state: 'succeeded',
      result: { rows: 7 },
      lease_token: null,
    });
    expect(rows.get(ids[0] ?? '')?.finished_at).not.toBeNull();
    const retry = rows.get(ids[1] ?? '');
    expect(retry).toMatchObject({
      state: 'retrying',
      error: 'deadlock',
      finished_at: null,
      lease_token: null,
    });
    const wait = (retry?.not_before?.getTime() ?? 0) - Date.now();
    expect(wait).toBeGreaterThan(50_000);
    expect(wait).toBeLessThanOrEqual(60_000);
    // The stale attempt wrote nothing: the newer owner's lease stands.
    const stale = rows.get(ids[2] ?? '');
    expect(stale).toMatchObject({ state: 'running', worker: 'w2', attempts: 3, result: null });
    expect(stale?.lease_token).toBe(retaken?.claim?.kind === 'run' ? retaken.claim.lease.token : 'none');
  });
});
