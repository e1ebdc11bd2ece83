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
/**
 * The runtime histogram per task, from aggjobs.run_totals (migration 000010): cumulative since the
 * database was installed, never lowered by cleanup's pruning of the run history.
 */
export async function runtimeHistograms(db: Queryable): Promise<RuntimeHistogram[]> {
  const { rows } = await db.query<{ task: string; buckets: number[]; count: number; sum_s: number }>(
    `SELECT task,
            (SELECT array_agg(n ORDER BY ord)::float8[] FROM (
               SELECT ord, sum(x) AS n FROM aggjobs.run_totals t2, unnest(t2.le_counts) WITH ORDINALITY AS z(x, ord)
               WHERE t2.task = t.task GROUP BY ord) per_bound) AS buckets,
            sum(timed_runs)::float8 AS count, sum(duration_sum_ms)::float8 / 1000 AS sum_s
     FROM aggjobs.run_totals t GROUP BY task ORDER BY task`,
  );
  return rows.map((r) => ({ task: r.task, buckets: r.buckets, count: r.count, sumSeconds: r.sum_s }));
}

/** Finished runs by task and final state, cumulative (aggjobs.run_totals). */
export async function runTotals(db: Queryable): Promise<Array<{ task: string; state: string; n: number }>> {
  const { rows } = await db.query<{ task: string; state: string; n: number }>(
    'SELECT task, state, runs::float8 AS n FROM aggjobs.run_totals ORDER BY 1, 2',
  );
  return rows;
}

export async function runCounts(db: Queryable): Promise<Array<{ task: string; state: string; n: number }>> {
  const { rows } = await db.query<{ task: string; state: string; n: number }>(
    'SELECT task, state, count(*)::int AS n FROM aggjobs.task_runs GROUP BY 1, 2 ORDER BY 1, 2',
  );
  return rows;
}
