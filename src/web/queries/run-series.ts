import type { Queryable } from '../../db/index.ts';

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

/**
 * Task throughput and duration over time, from the run history: runs that finished in each bucket
 * of the last `hours` (every bucket present, empty ones with zeros).
 */
export async function runSeries(
  db: Queryable,
  options: { hours: number; bucketSeconds: number; task: string | undefined },
): Promise<RunBucket[]> {
  // $1 hours, $2 bucket width in seconds, $3 task or NULL for all
  const { rows } = await db.query<{
    bucket: Date;
    succeeded: number;
    failed: number;
    revoked: number;
    avg_ms: number | null;
    p50_ms: number | null;
    p95_ms: number | null;
    max_ms: number | null;
  }>(
    `WITH buckets AS (
       SELECT to_timestamp(b) AS bucket
       FROM generate_series(
              (floor(extract(epoch FROM now() - make_interval(hours => $1)) / $2) * $2)::bigint,
              (floor(extract(epoch FROM now()) / $2) * $2)::bigint, $2::bigint) AS b
     ), runs AS (
       SELECT to_timestamp(floor(extract(epoch FROM finished_at) / $2) * $2) AS bucket, state, duration_ms
       FROM aggjobs.task_runs
       WHERE finished_at >= now() - make_interval(hours => $1) AND ($3::text IS NULL OR task = $3)
     )
     SELECT b.bucket,
            count(r.state) FILTER (WHERE r.state = 'succeeded')::int AS succeeded,
            count(r.state) FILTER (WHERE r.state IN ('failed', 'timed_out'))::int AS failed,
            count(r.state) FILTER (WHERE r.state = 'revoked')::int AS revoked,
            avg(r.duration_ms)::float8 AS avg_ms,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY r.duration_ms)::float8 AS p50_ms,
            percentile_cont(0.95) WITHIN GROUP (ORDER BY r.duration_ms)::float8 AS p95_ms,
            max(r.duration_ms)::float8 AS max_ms
     FROM buckets b LEFT JOIN runs r USING (bucket)
     GROUP BY b.bucket ORDER BY b.bucket`,
    [options.hours, options.bucketSeconds, options.task ?? null],
  );
  return rows.map((r) => ({
    bucket: r.bucket,
    succeeded: r.succeeded,
    failed: r.failed,
    revoked: r.revoked,
    avgMs: r.avg_ms,
    p50Ms: r.p50_ms,
    p95Ms: r.p95_ms,
    maxMs: r.max_ms,
  }));
}

/** Per task over the last `hours`: runs, outcomes, mean and p95 duration. */
export async function taskSummaries(db: Queryable, hours: number): Promise<TaskSummary[]> {
  // $1 hours
  const { rows } = await db.query<{
    task: string;
    runs: number;
    succeeded: number;
    failed: number;
    avg_ms: number | null;
    p95_ms: number | null;
  }>(
    `SELECT task, count(*)::int AS runs,
            count(*) FILTER (WHERE state = 'succeeded')::int AS succeeded,
            count(*) FILTER (WHERE state IN ('failed', 'timed_out'))::int AS failed,
            avg(duration_ms)::float8 AS avg_ms,
            percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)::float8 AS p95_ms
     FROM aggjobs.task_runs WHERE enqueued_at > now() - make_interval(hours => $1)
     GROUP BY task ORDER BY task`,
    [hours],
  );
  return rows.map((r) => ({
    task: r.task,
    runs: r.runs,
    succeeded: r.succeeded,
    failed: r.failed,
    avgMs: r.avg_ms,
    p95Ms: r.p95_ms,
  }));
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
       FROM generate_series(
              (floor(extract(epoch FROM now() - make_interval(hours => $1)) / $2) * $2)::bigint,
              (floor(extract(epoch FROM now()) / $2) * $2)::bigint, $2::bigint) AS b
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
