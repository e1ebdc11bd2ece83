import { beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../src/db/index.ts';
import {
  isDemoSeeded,
  runTraffic,
  seedDemoData,
  WorkloadOptionError,
  type SeedOptions,
} from '../src/workload/index.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

// Noon: the busiest time of day, so that some executions are still running at `end`.
const options: SeedOptions = {
  seed: 11,
  days: 2,
  executionsPerDay: 3000,
  workspaces: 200,
  users: 2000,
  end: new Date('2026-11-01T12:00:00Z'),
};

/** Everything the seed wrote, except the engine's aggjobs_xid, reduced to counts, sums and a digest. */
async function fingerprint(pool: Pool): Promise<Record<string, unknown>> {
  const { rows } = await pool.query(`
    SELECT
      (SELECT md5(string_agg(concat_ws('|', id, name, created_at), ',' ORDER BY id)) FROM public.workspaces) AS workspaces,
      (SELECT count(*) FROM public.execution_logs) AS executions,
      (SELECT sum(credits_used) FROM public.execution_logs) AS credits_used,
      (SELECT md5(string_agg(concat_ws('|', id, workspace_id, user_id, workflow_id, status, started_at, completed_at,
                                       duration_ms, credits_used, error_type), ',' ORDER BY id))
         FROM public.execution_logs) AS execution_digest,
      (SELECT count(*) FROM public.user_activity_events) AS events,
      (SELECT md5(string_agg(concat_ws('|', id, workspace_id, user_id, event_type, occurred_at, session_id, properties),
                             ',' ORDER BY id))
         FROM public.user_activity_events) AS event_digest,
      (SELECT count(*) FROM public.credit_transactions) AS credits,
      (SELECT sum(credits) FROM public.credit_transactions) AS credit_sum,
      (SELECT md5(string_agg(concat_ws('|', id, workspace_id, user_id, execution_id, source, credits, created_at),
                             ',' ORDER BY id))
         FROM public.credit_transactions) AS credit_digest`);
  return rows[0] as Record<string, unknown>;
}

async function rowCounts(pool: Pool): Promise<number[]> {
  const { rows } = await pool.query<{ w: number; e: number; a: number; c: number }>(`
    SELECT (SELECT count(*) FROM public.workspaces) AS w, (SELECT count(*) FROM public.execution_logs) AS e,
           (SELECT count(*) FROM public.user_activity_events) AS a, (SELECT count(*) FROM public.credit_transactions) AS c`);
  const row = rows[0];
  return row === undefined ? [] : [row.w, row.e, row.a, row.c];
}

describe('seedDemoData', () => {
  let a: TestDatabase;
  let b: TestDatabase;
  beforeAll(async () => {
    a = await createTestDatabase();
    b = await createTestDatabase();
  });

  it('rejects bad options, naming the field and the rule, before writing anything', async () => {
    const bad: Array<[Partial<SeedOptions>, RegExp]> = [
      [{ days: 0 }, /^days must be an integer from 1 to 3650, got 0$/],
      [{ executionsPerDay: -5 }, /^executionsPerDay must be an integer/],
      [{ workspaces: 300, users: 299 }, /^users must be at least workspaces \(300\), got 299$/],
      [{ end: new Date(Number.NaN) }, /^end must be a valid Date/],
    ];
    for (const [change, message] of bad) {
      const attempt = seedDemoData(a.pool, { ...options, ...change });
      await expect(attempt).rejects.toThrow(WorkloadOptionError);
      await expect(attempt).rejects.toThrow(message);
    }
    expect(await rowCounts(a.pool)).toEqual([0, 0, 0, 0]);
    expect(await isDemoSeeded(a.pool)).toBe(false);
  });

  it('gives the same rows for the same seed, and reports its progress', async () => {
    const progress: Array<{ done: number; total: number; phase: string }> = [];
    const first = await seedDemoData(a.pool, options, (p) => progress.push(p));
    const second = await seedDemoData(b.pool, options);
    expect(first.executions).toBe(6000);
    expect(first.activityEvents).toBeGreaterThan(2000);
    expect(first.creditTransactions).toBeGreaterThan(6000);
    expect(first.rowsPerSecond).toBeGreaterThan(0);
    expect({ ...second, durationMs: 0, rowsPerSecond: 0 }).toEqual({
      ...first,
      durationMs: 0,
      rowsPerSecond: 0,
    });
    const printA = await fingerprint(a.pool);
    expect(printA.executions).toBe(6000);
    expect(await fingerprint(b.pool)).toEqual(printA);
    expect(await isDemoSeeded(a.pool)).toBe(true);

    expect(progress.at(0)).toEqual({ done: 0, total: 6000, phase: 'workspaces' });
    expect(progress.at(-1)).toEqual({ done: 6000, total: 6000, phase: 'done' });
    expect(progress.map((p) => p.done)).toEqual([...progress.map((p) => p.done)].sort((x, y) => x - y));
  });

  it('keeps the data inside [end - days, end) with final executions except the last minutes', async () => {
    const { rows } = await a.pool.query(
      `SELECT min(started_at) AS first, max(started_at) AS last, max(completed_at) AS last_completed,
              count(*) FILTER (WHERE status = 'running') AS running,
              min(started_at) FILTER (WHERE status = 'running') AS first_running,
              count(*) FILTER (WHERE status = 'running' AND (completed_at IS NOT NULL OR duration_ms IS NOT NULL)) AS bad_running,
              count(*) FILTER (WHERE status <> 'running' AND completed_at <> started_at + duration_ms * interval '1 ms') AS bad_final,
              min(duration_ms) AS min_ms, max(duration_ms) AS max_ms
       FROM public.execution_logs`,
    );
    const r = rows[0];
    const end = options.end as Date;
    expect(r.first.getTime()).toBeGreaterThanOrEqual(end.getTime() - 2 * 86_400_000);
    expect(r.last.getTime()).toBeLessThan(end.getTime());
    expect(r.last_completed.getTime()).toBeLessThan(end.getTime());
    expect(r.running).toBeGreaterThan(0);
    expect(r.first_running.getTime()).toBeGreaterThanOrEqual(end.getTime() - 600_000);
    expect(r.bad_running).toBe(0);
    expect(r.bad_final).toBe(0);
    expect(r.min_ms).toBeGreaterThanOrEqual(50);
    expect(r.max_ms).toBeLessThanOrEqual(600_000);
  });

  it('inserts the last day as running and completes it with an UPDATE', async () => {
    // Change capture stamps a row with the transaction that last wrote it: the last day's finished
    // executions were all written by one later transaction (the UPDATE), not by their INSERT.
    const { rows } = await a.pool.query(
      `WITH last_day AS (
         SELECT * FROM public.execution_logs WHERE id > (SELECT max(id) FROM public.execution_logs) - $1
       )
       SELECT (SELECT count(DISTINCT aggjobs_xid) FROM last_day WHERE status <> 'running') AS completing_xids,
              (SELECT count(DISTINCT aggjobs_xid) FROM last_day WHERE status = 'running') AS inserting_xids,
              (SELECT min(aggjobs_xid) FROM last_day WHERE status <> 'running')
                > (SELECT max(aggjobs_xid) FROM last_day WHERE status = 'running') AS completed_later`,
      [options.executionsPerDay],
    );
    expect(rows[0]).toEqual({ completing_xids: 1, inserting_xids: 1, completed_later: true });
  });

  it('mixes statuses near 85/10/3/2 %', async () => {
    const { rows } = await a.pool.query<{ status: string; share: number }>(
      `SELECT status, count(*)::float8 / sum(count(*)) OVER () AS share
       FROM public.execution_logs WHERE status <> 'running' GROUP BY status`,
    );
    const share = Object.fromEntries(rows.map((r) => [r.status, r.share]));
    expect(share.success).toBeCloseTo(0.85, 1);
    expect(Math.abs((share.failed ?? 0) - 0.1)).toBeLessThan(0.02);
    expect(Math.abs((share.timeout ?? 0) - 0.03)).toBeLessThan(0.012);
    expect(Math.abs((share.cancelled ?? 0) - 0.02)).toBeLessThan(0.012);
    const errors = await a.pool.query(
      `SELECT count(*) FILTER (WHERE status IN ('failed', 'timeout') AND error_type IS NULL) AS missing,
              count(*) FILTER (WHERE status NOT IN ('failed', 'timeout') AND error_type IS NOT NULL) AS stray
       FROM public.execution_logs`,
    );
    expect(errors.rows[0]).toEqual({ missing: 0, stray: 0 });
  });

  it('skews executions to a few workspaces (Zipf) and keeps users in their workspace', async () => {
    const { rows } = await a.pool.query(
      `WITH per AS (SELECT workspace_id, count(*) AS n FROM public.execution_logs GROUP BY workspace_id),
            ranked AS (SELECT n, row_number() OVER (ORDER BY n DESC) AS rank FROM per)
       SELECT sum(n) FILTER (WHERE rank <= 20)::float8 / sum(n) AS top_share,
              (SELECT count(*) FROM public.execution_logs WHERE (user_id - 1) % 200 + 1 <> workspace_id) AS strangers,
              (SELECT max(user_id) FROM public.execution_logs) AS max_user
       FROM ranked`,
    );
    expect(rows[0].top_share).toBeGreaterThan(0.55);
    expect(rows[0].strangers).toBe(0);
    expect(rows[0].max_user).toBeLessThanOrEqual(2000);
  });

  it('charges finished executions, adds api and storage credits, and refunds some (negative)', async () => {
    const { rows } = await a.pool.query(
      `SELECT source, count(*) AS n, min(credits)::float8 AS min, max(credits)::float8 AS max
       FROM public.credit_transactions GROUP BY source ORDER BY source`,
    );
    const by = Object.fromEntries(rows.map((r) => [r.source, r]));
    expect(Object.keys(by)).toEqual(['api', 'execution', 'refund', 'storage']);
    expect(by.refund.max).toBeLessThan(0);
    expect(by.execution.min).toBeGreaterThan(0);
    const refundShare = by.refund.n / rows.reduce((sum, r) => sum + r.n, 0);
    expect(refundShare).toBeGreaterThan(0.002);
    expect(refundShare).toBeLessThan(0.03);
    const tied = await a.pool.query(
      `SELECT count(*) FILTER (WHERE c.id IS NULL) AS uncharged,
              count(*) FILTER (WHERE c.credits <> e.credits_used OR c.workspace_id <> e.workspace_id) AS mismatched
       FROM public.execution_logs e
       LEFT JOIN public.credit_transactions c ON c.execution_id = e.id AND c.source = 'execution'
       WHERE e.status <> 'running'`,
    );
    expect(tied.rows[0]).toEqual({ uncharged: 0, mismatched: 0 });
  });

  it('groups activity events into sessions of one user', async () => {
    const { rows } = await a.pool.query(
      `SELECT count(DISTINCT session_id) AS sessions, count(*) AS events,
              count(DISTINCT event_type) AS types,
              (SELECT count(*) FROM (SELECT session_id FROM public.user_activity_events
                                     GROUP BY session_id HAVING count(DISTINCT user_id) > 1) s) AS shared
       FROM public.user_activity_events`,
    );
    expect(rows[0].sessions).toBeGreaterThan(400);
    expect(rows[0].events / rows[0].sessions).toBeGreaterThan(3);
    expect(rows[0].types).toBe(6);
    expect(rows[0].shared).toBe(0);
  });

  it('writes a share of late rows: time order disagrees with id (arrival) order', async () => {
    for (const [table, column] of [
      ['execution_logs', 'started_at'],
      ['user_activity_events', 'occurred_at'],
    ] as const) {
      const { rows } = await a.pool.query(
        `SELECT count(*) FILTER (WHERE ${column} < newest_before - interval '1 hour')::float8 / count(*) AS late
         FROM (SELECT ${column}, max(${column}) OVER (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                 AS newest_before
               FROM public.${table}) AS t`,
      );
      expect(rows[0].late).toBeGreaterThan(0.01);
      expect(rows[0].late).toBeLessThan(0.06);
    }
  });
});

describe('runTraffic', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedDemoData(db.pool, { ...options, days: 1, executionsPerDay: 1000, end: undefined });
  });

  it('writes about `rate` rows per second, with completions and late rows', async () => {
    const before = await rowCounts(db.pool);
    const ticks: number[] = [];
    const stats = await runTraffic(db.pool, {
      rate: 100,
      durationSeconds: 2,
      seed: 5,
      onTick: (s) => ticks.push(s.writes),
    });
    const after = await rowCounts(db.pool);
    expect(stats.errors).toBe(0);
    expect(stats.elapsedMs).toBeGreaterThanOrEqual(1900);
    expect(stats.elapsedMs).toBeLessThan(3500);
    expect(stats.writes).toBeGreaterThan(150);
    expect(stats.writes).toBeLessThanOrEqual(220);
    expect(stats.writes).toBe(stats.inserts + stats.completions + stats.lateRows);
    expect(stats.completions).toBeGreaterThan(0);
    expect(ticks.length).toBeGreaterThan(10);

    // New rows: every insert and late row, plus the credit charge of each completion.
    const added =
      (after[1] ?? 0) +
      (after[2] ?? 0) +
      (after[3] ?? 0) -
      (before[1] ?? 0) -
      (before[2] ?? 0) -
      (before[3] ?? 0);
    expect(added).toBeGreaterThanOrEqual(stats.inserts + stats.lateRows + stats.completions);
    expect(added).toBeLessThan(stats.writes * 1.2);

    const { rows } = await db.pool.query(
      `SELECT count(*) FILTER (WHERE status = 'running' AND started_at > now() - interval '1 minute') AS running,
              count(*) FILTER (WHERE status <> 'running' AND completed_at > now() - interval '1 minute') AS completed,
              count(*) FILTER (WHERE status <> 'running' AND (completed_at IS NULL OR duration_ms IS NULL)) AS broken
       FROM public.execution_logs`,
    );
    expect(rows[0].running).toBeGreaterThan(0);
    expect(rows[0].completed).toBeGreaterThan(0);
    expect(rows[0].broken).toBe(0);
  });

  it('survives a killed connection: counts the error, reconnects and goes on', async () => {
    const kill = setTimeout(() => {
      void db.pool.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()`,
      );
    }, 700);
    const stats = await runTraffic(db.pool, { rate: 100, durationSeconds: 2, seed: 7 });
    clearTimeout(kill);
    expect(stats.errors).toBeGreaterThanOrEqual(1);
    expect(stats.lastError).toBeDefined();
    expect(stats.writes).toBeGreaterThan(100);
  });

  it('stops soon after its signal aborts', async () => {
    // Aborted once it has written (not after a fixed time: under load its set-up alone can take
    // longer), it ends without another tick: the pause between ticks is cut short by the signal.
    const stop = new AbortController();
    let ticksAfterAbort = 0;
    const stats = await runTraffic(db.pool, {
      rate: 50,
      seed: 6,
      signal: stop.signal,
      onTick: (s) => {
        if (stop.signal.aborted) ticksAfterAbort += 1;
        else if (s.writes > 0) stop.abort();
      },
    });
    expect(stop.signal.aborted).toBe(true);
    expect(ticksAfterAbort).toBe(0);
    expect(stats.writes).toBeGreaterThan(0);
    expect(stats.errors).toBe(0);
  });

  it('rejects a bad rate before writing', async () => {
    await expect(runTraffic(db.pool, { rate: 0, seed: 1 })).rejects.toThrow(
      /^rate must be an integer from 1/,
    );
  });
});
