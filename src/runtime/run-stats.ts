import type { Queryable } from '../db/index.ts';

/*
 * The run history's figures over time (the dashboard's charts and /metrics): reads of
 * aggjobs.task_runs and of aggjobs.run_totals, which a trigger on task_runs keeps (migration 000010).
 */

export interface RunBucket {
  bucket: Date;
  succeeded: number;
  failed: number;
  revoked: number;
  avgMs: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
  maxMs: number | null;
}

export interface TaskSummary {
  task: string;
  runs: number;
  succeeded: number;
  failed: number;
  avgMs: number | null;
  p95Ms: number | null;
}

/** The starts `b` (epoch seconds) of the buckets $2 seconds wide that cover the last $1 hours. */
const bucketStarts = `generate_series(
  (floor(extract(epoch FROM now() - make_interval(hours => $1)) / $2) * $2)::bigint,
  (floor(extract(epoch FROM now()) / $2) * $2)::bigint, $2::bigint) AS b`;

/**
 * Task throughput and duration over time, from the run history: runs that finished in each bucket
 * of the last `hours` (every bucket present, empty ones with zeros).
 */
export async function runSeries(
  db: Queryable,
  options: { hours: number; bucketSeconds: number; task: string | undefined },
): Promise<RunBucket[]> {
  // $1 hours, $2 bucket width in seconds, $3 task or NULL for all
  const { rows } = await db.query<RunBucket>(
    `WITH buckets AS (
       SELECT to_timestamp(b) AS bucket
       FROM ${bucketStarts}
     ), runs AS (
       SELECT to_timestamp(floor(extract(epoch FROM finished_at) / $2) * $2) AS bucket, state, duration_ms
       FROM aggjobs.task_runs
       WHERE finished_at >= now() - make_interval(hours => $1) AND ($3::text IS NULL OR task = $3)
     )
     SELECT b.bucket,
            count(r.state) FILTER (WHERE r.state = 'succeeded')::int AS succeeded,
            count(r.state) FILTER (WHERE r.state IN ('failed', 'timed_out'))::int AS failed,
            count(r.state) FILTER (WHERE r.state = 'revoked')::int AS revoked,
            avg(r.duration_ms)::float8 AS "avgMs",
            percentile_cont(0.5) WITHIN GROUP (ORDER BY r.duration_ms)::float8 AS "p50Ms",
            percentile_cont(0.95) WITHIN GROUP (ORDER BY r.duration_ms)::float8 AS "p95Ms",
            max(r.duration_ms)::float8 AS "maxMs"
     FROM buckets b LEFT JOIN runs r USING (bucket)
     GROUP BY b.bucket ORDER BY b.bucket`,
    [options.hours, options.bucketSeconds, options.task ?? null],
  );
  return rows;
}

/** Per task over the last `hours`: runs, outcomes, mean and p95 duration. */
export async function taskSummaries(db: Queryable, hours: number): Promise<TaskSummary[]> {
  // $1 hours
  const { rows } = await db.query<TaskSummary>(
    `SELECT task, count(*)::int AS runs,
            count(*) FILTER (WHERE state = 'succeeded')::int AS succeeded,
            count(*) FILTER (WHERE state IN ('failed', 'timed_out'))::int AS failed,
            avg(duration_ms)::float8 AS "avgMs",
            percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)::float8 AS "p95Ms"
     FROM aggjobs.task_runs WHERE enqueued_at > now() - make_interval(hours => $1)
     GROUP BY task ORDER BY task`,
    [hours],
  );
  return rows;
}

export interface QueueLengthPoint {
  bucket: Date;
  /** Per queue: runs enqueued by the bucket's end and not yet started (queued, delayed or retrying). */
  waiting: Record<string, number>;
}

/**
 * Queue length over time, from the run history: at the end of each bucket of the last `hours`, how
 * many runs of each queue had been enqueued and had not started (a run that never started counts
 * until it finished, e.g. revoked, or until now). The run history is kept RUN_HISTORY_DAYS, so the
 * figures go back that far; a run retried after a failure counts from its enqueue to its first start.
 */
export async function queueLengthSeries(
  db: Queryable,
  options: { hours: number; bucketSeconds: number },
): Promise<QueueLengthPoint[]> {
  // $1 hours, $2 bucket width in seconds
  const { rows } = await db.query<{ bucket: Date; queue: string | null; waiting: number }>(
    `WITH buckets AS (
       SELECT to_timestamp(b + $2) AS at, to_timestamp(b) AS bucket
       FROM ${bucketStarts}
     ), runs AS (
       SELECT queue, enqueued_at, coalesce(started_at, finished_at, 'infinity') AS left_at
       FROM aggjobs.task_runs
       WHERE coalesce(started_at, finished_at, 'infinity') > now() - make_interval(hours => $1)
     )
     SELECT b.bucket, r.queue, count(r.queue)::int AS waiting
     FROM buckets b
     LEFT JOIN runs r ON r.enqueued_at <= least(b.at, now()) AND r.left_at > least(b.at, now())
     GROUP BY b.bucket, r.queue ORDER BY b.bucket`,
    [options.hours, options.bucketSeconds],
  );
  const points = new Map<number, QueueLengthPoint>();
  for (const r of rows) {
    const key = r.bucket.getTime();
    const point = points.get(key) ?? { bucket: r.bucket, waiting: {} };
    if (r.queue !== null) point.waiting[r.queue] = r.waiting;
    points.set(key, point);
  }
  return [...points.values()];
}

/** Upper bounds (seconds) of the task runtime histogram: from a health check to a monthly rollup. */
export const RUNTIME_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14_400] as const;

export interface RuntimeHistogram {
  task: string;
  /** Cumulative counts, one per RUNTIME_BUCKETS entry. */
  buckets: number[];
  count: number;
  sumSeconds: number;
}

/**
 * The runtime histogram per task, from aggjobs.run_totals (migration 000010): cumulative since the
 * database was installed, never lowered by cleanup's pruning of the run history.
 */
export async function runtimeHistograms(db: Queryable): Promise<RuntimeHistogram[]> {
  const { rows } = await db.query<RuntimeHistogram>(
    `SELECT task,
            (SELECT array_agg(n ORDER BY ord)::float8[] FROM (
               SELECT ord, sum(x) AS n FROM aggjobs.run_totals t2, unnest(t2.le_counts) WITH ORDINALITY AS z(x, ord)
               WHERE t2.task = t.task GROUP BY ord) per_bound) AS buckets,
            sum(timed_runs)::float8 AS count, sum(duration_sum_ms)::float8 / 1000 AS "sumSeconds"
     FROM aggjobs.run_totals t GROUP BY task ORDER BY task`,
  );
  return rows;
}

export interface TaskStateCount {
  task: string;
  state: string;
  n: number;
}

/** Finished runs by task and final state, cumulative (aggjobs.run_totals). */
export async function runTotals(db: Queryable): Promise<TaskStateCount[]> {
  const sql = 'SELECT task, state, runs::float8 AS n FROM aggjobs.run_totals ORDER BY 1, 2';
  return (await db.query<TaskStateCount>(sql)).rows;
}

/** Runs in the run history by task and state (what RUN_HISTORY_DAYS keeps). */
export async function runCounts(db: Queryable): Promise<TaskStateCount[]> {
  const sql = 'SELECT task, state, count(*)::int AS n FROM aggjobs.task_runs GROUP BY 1, 2 ORDER BY 1, 2';
  return (await db.query<TaskStateCount>(sql)).rows;
}
