import type { Pool } from '../src/db/index.ts';
import { runHealthChecks } from '../src/tasks/index.ts';
import {
  builtinRollups,
  refreshMaterializedViews,
  refreshRollup,
  type RollupDefinition,
} from '../src/rollups/index.ts';
import { percentile, summarize, timed, type Summary } from './stats.ts';

export interface CaseResult {
  name: string;
  measured: Summary;
  reference?: { name: string; summary: Summary };
  /** measured ÷ reference (medians), or the figure itself when there is no reference. */
  ratio?: number;
  goal?: { op: '<=' | '>='; value: number; text: string };
  met?: boolean;
  note?: string;
  /** How to show the figures when they are not durations (rates, sizes, percentiles). */
  text?: { measured: string; reference?: string };
}

const hourly = builtinRollups.find((d) => d.name === 'execution_metrics_hourly') as RollupDefinition;
const incremental = { kind: 'incremental' } as const;

/** The plain GROUP BY a user would write for the same rollup. */
function plainGroupBy(def: RollupDefinition, where: string): string {
  const measures = def.measures.map((m) => `${m.sql} AS ${m.name}`).join(', ');
  return `SELECT date_trunc('hour', ${def.timeColumn}, 'UTC') AS bucket_start, workspace_id, ${measures}
    FROM ${def.source} ${where} GROUP BY 1, 2`;
}

/**
 * Runs the plain GROUP BY to completion without sending its rows to Node: EXPLAIN ANALYZE executes
 * the whole plan, aggregates included, and discards the rows. (Wrapping it in `SELECT count(*)`
 * would not do: PostgreSQL drops the unused aggregates of a subquery.) Same work_mem as a refresh.
 */
async function bareGroupBy(
  pool: Pool,
  def: RollupDefinition,
  where: string,
  params: unknown[] = [],
): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`SET LOCAL work_mem = '64MB'`);
    await client.query(
      `EXPLAIN (ANALYZE, TIMING OFF, SUMMARY OFF, COSTS OFF) ${plainGroupBy(def, where)}`,
      params,
    );
    await client.query('COMMIT');
  } finally {
    client.release();
  }
}

/** Inserts one new hour of executions after the newest one (about 14k rows: 10M over 30 days / 720 h). */
export async function insertNewHour(pool: Pool, rows: number): Promise<{ start: Date; end: Date }> {
  const { rows: r } = await pool.query<{ start: Date }>(
    `SELECT date_trunc('hour', max(started_at)) + interval '1 hour' AS start FROM public.execution_logs`,
  );
  const start = r[0]?.start ?? new Date();
  await pool.query(
    `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, completed_at, duration_ms, credits_used)
     SELECT ws, ws * 20 + i % 20, ws * 10 + i % 10, st, t, t + make_interval(secs => d / 1000.0), d, round(d / 100000.0, 4)
     FROM (SELECT i, 1 + floor(1000 * random() ^ 3)::int AS ws, $1::timestamptz + random() * interval '1 hour' AS t,
                  (50 + exp(random() * 9))::int AS d,
                  CASE WHEN random() < 0.85 THEN 'success' WHEN random() < 0.67 THEN 'failed' ELSE 'timeout' END AS st
           FROM generate_series(1, $2::int) i) x`,
    [start, rows],
  );
  return { start, end: new Date(start.getTime() + 3_600_000) };
}

function ratioCase(
  name: string,
  measured: number[],
  referenceName: string,
  reference: number[],
  goal?: CaseResult['goal'],
): CaseResult {
  const m = summarize(measured);
  const ref = summarize(reference);
  const ratio = m.median / ref.median;
  const met = goal === undefined ? undefined : goal.op === '<=' ? ratio <= goal.value : ratio >= goal.value;
  return { name, measured: m, reference: { name: referenceName, summary: ref }, ratio, goal, met };
}

/** Backfill of all hourly execution metrics ÷ the bare GROUP BY over the same rows. */
export async function backfillVsGroupBy(
  pool: Pool,
  runs: number,
): Promise<{ result: CaseResult; backfill: number[] }> {
  const backfill: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    bare.push(await timed(() => bareGroupBy(pool, hourly, '')));
    await pool.query(`TRUNCATE analytics.${hourly.name}`);
    backfill.push(
      await timed(() =>
        refreshRollup(pool, hourly, {
          timezone: 'UTC',
          mode: { kind: 'window', start: new Date(0), end: new Date('2100-01-01') },
        }),
      ),
    );
  }
  return {
    result: ratioCase(
      'backfill of all hourly execution metrics',
      backfill,
      'bare GROUP BY SELECT over the same rows',
      bare,
      {
        op: '<=',
        value: 1.5,
        text: '≤ 1.5 (TimescaleDB continuous aggregate: 2.2×)',
      },
    ),
    backfill,
  };
}

/** Incremental run after one new hour ÷ the bare GROUP BY of that hour. */
export async function incrementalHour(
  pool: Pool,
  runs: number,
  rowsPerHour: number,
): Promise<{ result: CaseResult; incremental: number[] }> {
  const inc: number[] = [];
  const bare: number[] = [];
  await refreshRollup(pool, hourly, { timezone: 'UTC', mode: incremental });
  for (let i = 0; i < runs; i += 1) {
    const hour = await insertNewHour(pool, rowsPerHour);
    inc.push(await timed(() => refreshRollup(pool, hourly, { timezone: 'UTC', mode: incremental })));
    bare.push(
      await timed(() =>
        bareGroupBy(pool, hourly, `WHERE started_at >= $1 AND started_at < $2`, [hour.start, hour.end]),
      ),
    );
  }
  return {
    result: ratioCase(
      `incremental run after one new hour (${rowsPerHour} rows)`,
      inc,
      'bare GROUP BY of that hour',
      bare,
      {
        op: '<=',
        value: 2.5,
        text: '≤ 2.5 (TimescaleDB refresh: about 3×)',
      },
    ),
    incremental: inc,
  };
}

/** Incremental run after 1,000 rows updated across all of history ÷ a full recompute. */
export async function scatteredUpdates(
  pool: Pool,
  runs: number,
  fullRecompute: number[],
): Promise<CaseResult> {
  const inc: number[] = [];
  await refreshRollup(pool, hourly, { timezone: 'UTC', mode: incremental });
  for (let i = 0; i < runs; i += 1) {
    await pool.query(
      `UPDATE public.execution_logs SET credits_used = credits_used + 1, duration_ms = coalesce(duration_ms, 0) + 1
       WHERE id IN (SELECT 1 + floor(random() * (SELECT max(id) FROM public.execution_logs))::bigint FROM generate_series(1, 1000))`,
    );
    inc.push(await timed(() => refreshRollup(pool, hourly, { timezone: 'UTC', mode: incremental })));
  }
  return ratioCase(
    'incremental run after 1,000 rows updated across history',
    inc,
    'full recompute (the backfill above)',
    fullRecompute,
    {
      op: '<=',
      value: 1 / 50,
      text: '≤ 1/50 = 0.02 (TimescaleDB re-materializes the range: about 1/1)',
    },
  );
}

/** The same hourly aggregate as a plain materialized view: REFRESH ÷ our incremental run after one new hour. */
export async function plainMaterializedView(
  pool: Pool,
  runs: number,
  incrementalHourRuns: number[],
): Promise<CaseResult> {
  await pool.query(`DROP MATERIALIZED VIEW IF EXISTS public.bench_mv_hourly`);
  await pool.query(`CREATE MATERIALIZED VIEW public.bench_mv_hourly AS ${plainGroupBy(hourly, '')}`);
  const refresh: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    refresh.push(
      await timed(async () => {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          await client.query(`SET LOCAL work_mem = '64MB'`);
          await client.query('REFRESH MATERIALIZED VIEW public.bench_mv_hourly');
          await client.query('COMMIT');
        } finally {
          client.release();
        }
      }),
    );
  }
  await pool.query(`DROP MATERIALIZED VIEW public.bench_mv_hourly`);
  const r = ratioCase(
    'plain REFRESH MATERIALIZED VIEW of the same aggregate',
    refresh,
    'our incremental run after one new hour',
    incrementalHourRuns,
  );
  r.note = `our incremental run is ${Math.round(r.ratio ?? 0)}× faster`;
  return r;
}

/** p99 latency of single-row application inserts while a full hourly recompute runs ÷ without. */
export async function writerLatency(pool: Pool, seconds: number): Promise<CaseResult> {
  const measure = async (): Promise<number[]> => {
    const client = await pool.connect();
    const latencies: number[] = [];
    const until = performance.now() + seconds * 1000;
    try {
      while (performance.now() < until) {
        latencies.push(
          await timed(() =>
            client.query(
              `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at) VALUES (1, 1, 1, 'running', now())`,
            ),
          ),
        );
      }
    } finally {
      client.release();
    }
    return latencies;
  };
  const alone = await measure();
  const rollup = refreshRollup(pool, hourly, {
    timezone: 'UTC',
    mode: { kind: 'window', start: new Date(0), end: new Date('2100-01-01') },
  });
  const during = await measure();
  await rollup;
  const p99Alone = percentile(alone, 99);
  const p99During = percentile(during, 99);
  const ratio = p99During / p99Alone;
  return {
    name: 'application insert latency p99 while a rollup runs',
    measured: { ...summarize(during), median: p99During },
    reference: { name: 'p99 without a rollup', summary: { ...summarize(alone), median: p99Alone } },
    ratio,
    goal: { op: '<=', value: 1.2, text: '≤ 1.2' },
    met: ratio <= 1.2,
    note: `${during.length} inserts during, ${alone.length} alone; medians ${percentile(during, 50).toFixed(2)} / ${percentile(alone, 50).toFixed(2)} ms`,
  };
}

/** The seed's task targets, measured as the work each task does. */
export async function seedTargets(pool: Pool, runs: number, dataEnd: Date): Promise<CaseResult[]> {
  const byGrain = (grain: string): RollupDefinition[] => builtinRollups.filter((d) => d.grain === grain);
  const results: CaseResult[] = [];
  const target = (name: string, samples: number[], seconds: number, text: string): CaseResult => {
    const s = summarize(samples);
    return {
      name,
      measured: s,
      goal: { op: '<=', value: seconds * 1000, text },
      met: s.median <= seconds * 1000,
    };
  };
  const hourlyRuns: number[] = [];
  const dailyRuns: number[] = [];
  const weeklyRuns: number[] = [];
  const viewRuns: number[] = [];
  const healthRuns: number[] = [];
  // The last whole day and week of the seeded data (the new hours the other cases added come after).
  const dayEnd = dataEnd;
  for (let i = 0; i < runs; i += 1) {
    await insertNewHour(pool, 14_000);
    hourlyRuns.push(
      await timed(async () => {
        for (const def of byGrain('hour'))
          await refreshRollup(pool, def, { timezone: 'UTC', mode: incremental });
      }),
    );
    dailyRuns.push(
      await timed(async () => {
        for (const def of byGrain('day'))
          await refreshRollup(pool, def, {
            timezone: 'UTC',
            mode: { kind: 'window', start: new Date(dayEnd.getTime() - 86_400_000), end: dayEnd },
          });
      }),
    );
    weeklyRuns.push(
      await timed(async () => {
        for (const def of byGrain('week'))
          await refreshRollup(pool, def, {
            timezone: 'UTC',
            mode: { kind: 'window', start: new Date(dayEnd.getTime() - 7 * 86_400_000), end: dayEnd },
          });
      }),
    );
    viewRuns.push(await timed(() => refreshMaterializedViews(pool, { timezone: 'UTC', force: true })));
    // The health check's database side (connectivity, freshness, failures, change-capture lag and the
    // anomaly scan over the hourly rollup); the broker probe is one round trip and is left out.
    healthRuns.push(
      await timed(() =>
        runHealthChecks({
          pool,
          settings: { analyticsTimezone: 'UTC' },
          broker: undefined,
          expected: [],
          rollups: builtinRollups.map((d) => ({ name: d.name, grain: String(d.grain) })),
        }),
      ),
    );
  }
  results.push(
    target('hourly_rollup (all hourly rollups, incremental, one new hour)', hourlyRuns, 300, 'seed: < 5 min'),
  );
  results.push(
    target('daily_rollup (daily rollups, window of the previous day)', dailyRuns, 900, 'seed: < 15 min'),
  );
  results.push(
    target('weekly_rollup (weekly rollup, window of the previous week)', weeklyRuns, 1800, 'seed: < 30 min'),
  );
  results.push(target('refresh_materialized_views (all three, forced)', viewRuns, 120, 'seed: < 2 min'));
  results.push(target('health_check (database side, with the anomaly scan)', healthRuns, 30, 'seed: < 30 s'));
  return results;
}
