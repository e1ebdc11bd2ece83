import type { PoolClient, Queryable } from '../db/index.ts';

/**
 * mv_hourly_execution_stats on a Citus coordinator (citus-views.ts): a table refreshed from the rows
 * of the view rollup view_execution_stats_hourly, never from source rows. A per-hour fingerprint of
 * those rows (computed on the workers, one row per hour and shard) picks the hours that changed;
 * their counts, sums and maximum add up on the workers; their percentiles are found by a binary
 * search for the value of each rank, each step counting the durations at or below a value on the
 * workers (`width_bucket` over each group's sorted durations). The coordinator receives numbers,
 * never durations.
 */

export const HOURLY = 'mv_hourly_execution_stats';

export const HOURLY_TABLE = `
CREATE TABLE analytics.${HOURLY} (
  hour                 timestamptz PRIMARY KEY,
  executions_total     bigint NOT NULL,
  executions_succeeded bigint NOT NULL,
  executions_failed    bigint NOT NULL,
  success_rate         numeric,
  duration_ms_avg      double precision,
  duration_ms_p50      double precision,
  duration_ms_p95      double precision,
  duration_ms_max      integer,
  active_workspaces    bigint NOT NULL
)`;

/** Per hour, the fingerprint of view_execution_stats_hourly's rows the hourly table was built from. */
export const HOURS_TABLE = `
CREATE TABLE IF NOT EXISTS aggjobs.citus_view_hours (
  hour        timestamptz PRIMARY KEY,
  groups      bigint NOT NULL,
  fingerprint numeric NOT NULL
)`;

/**
 * The statements the hourly table's refresh runs on the cluster (exported for the tests' EXPLAIN).
 * Each groups rollup rows on the workers: the coordinator receives one row per hour and shard.
 */
export const hourlyStatsSql = {
  /** Per hour: its groups and the sum of a 64-bit hash of each group's row. */
  fingerprints: `
SELECT r.bucket_start AS hour, count(*)::bigint AS groups,
       sum(hashtextextended((r.workspace_id, r.executions_total, r.executions_succeeded, r.executions_failed,
                             r.executions_finished, r.duration_count, r.duration_sum, r.duration_max,
                             r.durations)::text, 0)::numeric)::text AS fingerprint
FROM analytics.view_execution_stats_hourly r
GROUP BY 1`,
  /** $1 hours: what adds up over an hour's groups. */
  totals: `
SELECT r.bucket_start AS hour,
       sum(r.executions_total)::bigint AS total, sum(r.executions_succeeded)::bigint AS succeeded,
       sum(r.executions_failed)::bigint AS failed, sum(r.executions_finished)::bigint AS finished,
       sum(r.duration_count)::bigint AS durations, sum(r.duration_sum)::text AS duration_sum,
       max(r.duration_max) AS duration_max, min(r.durations[1]) AS duration_min,
       count(*)::bigint AS workspaces
FROM analytics.view_execution_stats_hourly r
WHERE r.bucket_start = ANY ($1::timestamptz[])
GROUP BY 1`,
  /**
   * $1 target ids, $2 their hours, $3 a value each: per target, how many durations of its hour are
   * at or below the value (`width_bucket` of a sorted array: the number of its elements <= value).
   */
  countAtOrBelow: `
SELECT q.i, sum(width_bucket(q.x, r.durations))::bigint AS n
FROM analytics.view_execution_stats_hourly r
JOIN unnest($1::int[], $2::timestamptz[], $3::int[]) AS q(i, hour, x) ON r.bucket_start = q.hour
GROUP BY q.i`,
};

interface HourTotals {
  hour: Date;
  total: string;
  succeeded: string;
  failed: string;
  finished: string;
  durations: string;
  duration_sum: string | null;
  duration_max: number | null;
  duration_min: number | null;
  workspaces: string;
}

/** What the hourly table's refresh did. */
export interface HourlyStatsRefresh {
  hoursRecomputed: number;
  hoursDeleted: number;
  /** Steps of the percentiles' binary search (one statement on the cluster each). */
  searchSteps: number;
}

const PERCENTILES = [0.5, 0.95] as const;

/**
 * For each (hour, rank), the smallest duration v of that hour with at least `rank` durations <= v:
 * the rank-th smallest duration. Every step halves every target's interval at once.
 */
async function durationsAtRanks(
  db: Queryable,
  targets: Array<{ hour: Date; rank: number; lo: number; hi: number }>,
): Promise<{ values: number[]; steps: number }> {
  const lo = targets.map((t) => t.lo);
  const hi = targets.map((t) => t.hi);
  let steps = 0;
  for (;;) {
    const open = targets.map((_, i) => i).filter((i) => (lo[i] ?? 0) < (hi[i] ?? 0));
    if (open.length === 0) break;
    const mids = open.map((i) => Math.floor(((lo[i] ?? 0) + (hi[i] ?? 0)) / 2));
    const { rows } = await db.query<{ i: number; n: string }>(hourlyStatsSql.countAtOrBelow, [
      open,
      open.map((i) => targets[i]?.hour),
      mids,
    ]);
    steps += 1;
    const counts = new Map(rows.map((r) => [r.i, Number(r.n)]));
    open.forEach((i, k) => {
      const mid = mids[k] ?? 0;
      if ((counts.get(i) ?? 0) >= (targets[i]?.rank ?? 0)) hi[i] = mid;
      else lo[i] = mid + 1;
    });
  }
  return { values: lo, steps };
}

/**
 * Brings analytics.mv_hourly_execution_stats up to date with view_execution_stats_hourly's rows
 * (see the top of this file). `client` holds the views' lock; nothing else writes those rows.
 */
export async function refreshHourlyStats(
  client: PoolClient,
  options: { force?: boolean },
): Promise<HourlyStatsRefresh> {
  const { rows: now } = await client.query<{ hour: Date; groups: string; fingerprint: string }>(
    hourlyStatsSql.fingerprints,
  );
  const { rows: stored } = await client.query<{ hour: Date; groups: string; fingerprint: string }>(
    'SELECT hour, groups::text AS groups, fingerprint::text AS fingerprint FROM aggjobs.citus_view_hours',
  );
  const key = (r: { groups: string; fingerprint: string }): string => `${r.groups}/${r.fingerprint}`;
  const before = new Map(stored.map((r) => [r.hour.getTime(), key(r)]));
  const present = new Set(now.map((r) => r.hour.getTime()));
  const changed = now.filter((r) => options.force === true || before.get(r.hour.getTime()) !== key(r));
  const deleted = stored.filter((r) => !present.has(r.hour.getTime())).map((r) => r.hour);

  let steps = 0;
  let totals: HourTotals[] = [];
  const ranks: number[][] = [];
  if (changed.length > 0) {
    ({ rows: totals } = await client.query<HourTotals>(hourlyStatsSql.totals, [changed.map((r) => r.hour)]));
    // percentile_cont's ranks (PostgreSQL's orderedsetaggs.c): floor and ceil of p * (n - 1), 0-based.
    const targets: Array<{ hour: Date; rank: number; lo: number; hi: number }> = [];
    for (const t of totals) {
      const n = Number(t.durations);
      const wanted: number[] = [];
      if (n > 0 && t.duration_min !== null && t.duration_max !== null)
        for (const p of PERCENTILES) {
          for (const row of [Math.floor(p * (n - 1)), Math.ceil(p * (n - 1))]) {
            wanted.push(targets.length);
            targets.push({ hour: t.hour, rank: row + 1, lo: t.duration_min, hi: t.duration_max });
          }
        }
      ranks.push(wanted);
    }
    const found = await durationsAtRanks(client, targets);
    steps = found.steps;
    totals.forEach((_, k) => {
      ranks[k] = (ranks[k] ?? []).map((i) => found.values[i] ?? 0);
    });
  }

  await client.query('BEGIN');
  try {
    if (deleted.length > 0) {
      await client.query(`DELETE FROM analytics.${HOURLY} WHERE hour = ANY ($1::timestamptz[])`, [deleted]);
      await client.query('DELETE FROM aggjobs.citus_view_hours WHERE hour = ANY ($1::timestamptz[])', [
        deleted,
      ]);
    }
    if (totals.length > 0) {
      const column = <K extends keyof HourTotals>(k: K): Array<HourTotals[K]> => totals.map((t) => t[k]);
      const at = (j: number): Array<number | null> =>
        ranks.map((r) => (r.length === 4 ? (r[j] ?? null) : null));
      // The percentiles as percentile_cont interpolates them, in float8 arithmetic:
      // lo + (hi - lo) * (p * (n - 1) - floor(p * (n - 1))).
      const lerp = (p: number, lo: string, hi: string): string =>
        `${lo}::float8 + (${hi}::float8 - ${lo}::float8) * (${p}::float8 * (u.durations - 1)::float8 - floor(${p}::float8 * (u.durations - 1)::float8))`;
      await client.query(
        `INSERT INTO analytics.${HOURLY} AS t
           (hour, executions_total, executions_succeeded, executions_failed, success_rate, duration_ms_avg,
            duration_ms_p50, duration_ms_p95, duration_ms_max, active_workspaces)
         SELECT u.hour, u.total, u.succeeded, u.failed,
                round(u.succeeded::numeric / nullif(u.finished, 0), 4),
                (u.duration_sum / nullif(u.durations, 0)::numeric)::double precision,
                ${lerp(0.5, 'u.p50_lo', 'u.p50_hi')}, ${lerp(0.95, 'u.p95_lo', 'u.p95_hi')},
                u.duration_max, u.workspaces
         FROM unnest($1::timestamptz[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                     $7::numeric[], $8::int[], $9::bigint[], $10::int[], $11::int[], $12::int[], $13::int[])
              AS u(hour, total, succeeded, failed, finished, durations, duration_sum, duration_max, workspaces,
                   p50_lo, p50_hi, p95_lo, p95_hi)
         ON CONFLICT (hour) DO UPDATE SET executions_total = EXCLUDED.executions_total,
           executions_succeeded = EXCLUDED.executions_succeeded, executions_failed = EXCLUDED.executions_failed,
           success_rate = EXCLUDED.success_rate, duration_ms_avg = EXCLUDED.duration_ms_avg,
           duration_ms_p50 = EXCLUDED.duration_ms_p50, duration_ms_p95 = EXCLUDED.duration_ms_p95,
           duration_ms_max = EXCLUDED.duration_ms_max, active_workspaces = EXCLUDED.active_workspaces`,
        [
          column('hour'),
          column('total'),
          column('succeeded'),
          column('failed'),
          column('finished'),
          column('durations'),
          column('duration_sum'),
          column('duration_max'),
          column('workspaces'),
          at(0),
          at(1),
          at(2),
          at(3),
        ],
      );
      await client.query(
        `INSERT INTO aggjobs.citus_view_hours (hour, groups, fingerprint)
         SELECT * FROM unnest($1::timestamptz[], $2::bigint[], $3::numeric[])
         ON CONFLICT (hour) DO UPDATE SET groups = EXCLUDED.groups, fingerprint = EXCLUDED.fingerprint`,
        [changed.map((r) => r.hour), changed.map((r) => r.groups), changed.map((r) => r.fingerprint)],
      );
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
  return { hoursRecomputed: totals.length, hoursDeleted: deleted.length, searchSteps: steps };
}
