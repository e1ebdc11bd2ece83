import type { Queryable } from '../../db/index.ts';

/** Upper bounds (seconds) of the task runtime histogram: from a health check to a monthly rollup. */
export const RUNTIME_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14_400] as const;

export interface RuntimeHistogram {
  task: string;
  /** Cumulative counts, one per RUNTIME_BUCKETS entry. */
  buckets: number[];
  count: number;
  sumSeconds: number;
}

/** Runtime histogram per task over the finished runs in the history (aggjobs.task_runs). */
export async function runtimeHistograms(db: Queryable): Promise<RuntimeHistogram[]> {
  // $1 bucket upper bounds in seconds
  const { rows } = await db.query<{ task: string; buckets: number[]; count: number; sum_s: number }>(
    `WITH runs AS (
       SELECT task, duration_ms FROM aggjobs.task_runs WHERE duration_ms IS NOT NULL AND finished_at IS NOT NULL
     ), per_bound AS (
       SELECT r.task, le, count(*) FILTER (WHERE r.duration_ms <= le * 1000) AS n
       FROM runs r CROSS JOIN unnest($1::float8[]) AS le GROUP BY r.task, le
     ), totals AS (
       SELECT task, count(*)::int AS count, sum(duration_ms)::float8 / 1000 AS sum_s FROM runs GROUP BY task
     )
     SELECT p.task, array_agg(p.n ORDER BY p.le)::int[] AS buckets, t.count, t.sum_s
     FROM per_bound p JOIN totals t USING (task)
     GROUP BY p.task, t.count, t.sum_s ORDER BY p.task`,
    [RUNTIME_BUCKETS],
  );
  return rows.map((r) => ({ task: r.task, buckets: r.buckets, count: r.count, sumSeconds: r.sum_s }));
}

export async function runCounts(db: Queryable): Promise<Array<{ task: string; state: string; n: number }>> {
  const { rows } = await db.query<{ task: string; state: string; n: number }>(
    'SELECT task, state, count(*)::int AS n FROM aggjobs.task_runs GROUP BY 1, 2 ORDER BY 1, 2',
  );
  return rows;
}

/** Age in seconds of the oldest open transaction (it holds every change-capture horizon back). */
export async function changeCaptureLagSeconds(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ lag_s: number | null }>(
    `SELECT coalesce(max(extract(epoch FROM now() - xact_start)), 0)::float8 AS lag_s
     FROM pg_stat_activity
     WHERE (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL) AND pid <> pg_backend_pid()
       AND xact_start IS NOT NULL`,
  );
  return rows[0]?.lag_s ?? 0;
}
