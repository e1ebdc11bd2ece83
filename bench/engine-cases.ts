import type { Pool } from '../src/db/index.ts';
import { runHistory } from '../src/runtime/index.ts';
import { runHealthChecks } from '../src/tasks/index.ts';
import {
  builtinRollups,
  installCoveringIndexes,
  planCoveringIndexes,
  refreshMaterializedViews,
  refreshRollup,
  type RollupDefinition,
} from '../src/rollups/index.ts';
import { backfillScaling, type BackfillBreakdown } from './backfill-scaling.ts';
import type { Dataset } from './datasets.ts';
import {
  formatMs,
  formatRatios,
  interleavedPairs,
  pairedRatios,
  percentile,
  summarize,
  timed,
  type PairedRatios,
  type Summary,
} from './stats.ts';

export interface CaseResult {
  name: string;
  measured: Summary;
  reference?: { name: string; summary: Summary };
  /** measured ÷ reference: the median of paired ratios when `spread` is given, else of the medians. */
  ratio?: number;
  /** The paired ratios of interleaved runs, when the case ran in pairs. */
  spread?: PairedRatios;
  goal?: { op: '<=' | '>='; value: number; text: string };
  met?: boolean;
  note?: string;
  /** How to show the figures when they are not durations (rates, sizes, percentiles). */
  text?: { measured: string; reference?: string };
}

/** How many interleaved pairs a ratio case runs: at least `min`, more (up to `max`) while the goal is within the spread. */
export interface PairCount {
  min: number;
  max: number;
}

const hourly = builtinRollups.find((d) => d.name === 'execution_metrics_hourly') as RollupDefinition;
/** The rollups the hourly task and an hourly backfill refresh: executions, activity, credits. */
const hourlyRollups = builtinRollups.filter((d) => d.grain === 'hour');
const incremental = { kind: 'incremental' } as const;

interface Range {
  start: Date;
  end: Date;
}

/** The plain GROUP BY a user would write for the same hourly rollup, over `range` or all rows. */
function plainGroupBy(def: RollupDefinition, range?: Range): string {
  const dims = def.dimensions.map((d) => d.column);
  const measures = def.measures.map((m) => `${m.sql} AS ${m.name}`).join(', ');
  const where = range === undefined ? '' : `WHERE ${def.timeColumn} >= $1 AND ${def.timeColumn} < $2`;
  return `SELECT date_trunc('hour', ${def.timeColumn}, 'UTC') AS bucket_start, ${dims.join(', ')}, ${measures}
    FROM ${def.source} ${where} GROUP BY 1, ${dims.map((_, i) => i + 2).join(', ')}`;
}

/**
 * The honest reference: the plain GROUP BY of each rollup, its rows written into a new table
 * (`CREATE TEMP TABLE … AS`, dropped at commit), so the reference also computes and stores every
 * row, as a refresh does. Same work_mem as a refresh (64MB). Not EXPLAIN ANALYZE (which discards
 * the rows), nor an INSERT into an empty table (which is cheaper than a user's backfill).
 */
export async function bareGroupBy(
  pool: Pool,
  defs: readonly RollupDefinition[],
  range?: Range,
): Promise<void> {
  const params = range === undefined ? [] : [range.start, range.end];
  await intoTempTables(
    pool,
    defs.map((def) => ({ sql: plainGroupBy(def, range), params })),
  );
}

/**
 * A reference's queries, each stored into a new table (`CREATE TEMP TABLE … AS`, dropped at commit)
 * in one transaction with a refresh's work_mem (64MB): the rows computed and written, as a refresh does.
 */
export async function intoTempTables(
  pool: Pool,
  queries: ReadonlyArray<{ sql: string; params?: unknown[] }>,
): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`SET LOCAL work_mem = '64MB'`);
    for (const [i, query] of queries.entries())
      await client.query(
        `CREATE TEMP TABLE bench_reference_${i} ON COMMIT DROP AS ${query.sql}`,
        query.params ?? [],
      );
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/**
 * Inserts one new hour after the newest execution into all three sources of the hourly rollups:
 * `rows` executions (about 14k on the full set: 10M over 30 days / 720 h), and activity events and
 * credit transactions in about the seed's proportions (0.2 and 0.4 per execution).
 */
export async function insertNewHour(pool: Pool, rows: number): Promise<Range> {
  const { rows: r } = await pool.query<{ start: Date }>(
    `SELECT date_trunc('hour', max(started_at)) + interval '1 hour' AS start FROM public.execution_logs`,
  );
  const start = r[0]?.start ?? new Date();
  // $1 hour start, $2 executions
  await pool.query(
    `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, completed_at, duration_ms, credits_used)
     SELECT ws, ws * 20 + i % 20, ws * 10 + i % 10, st, t, t + make_interval(secs => d / 1000.0), d, round(d / 100000.0, 4)
     FROM (SELECT i, 1 + floor(1000 * random() ^ 3)::int AS ws, $1::timestamptz + random() * interval '1 hour' AS t,
                  (50 + exp(random() * 9))::int AS d,
                  CASE WHEN random() < 0.85 THEN 'success' WHEN random() < 0.67 THEN 'failed' ELSE 'timeout' END AS st
           FROM generate_series(1, $2::int) i) x`,
    [start, rows],
  );
  // $1 hour start, $2 events
  await pool.query(
    `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id)
     SELECT ws, ws * 20 + i % 20, (ARRAY['page_view','api_call','workflow_run','workflow_edit','login','settings_change'])[1 + i % 6],
            $1::timestamptz + random() * interval '1 hour', 's' || (ws * 100 + i % 50)
     FROM (SELECT i, 1 + floor(1000 * random() ^ 3)::int AS ws FROM generate_series(1, $2::int) i) x`,
    [start, Math.ceil(rows / 5)],
  );
  // $1 hour start, $2 transactions
  await pool.query(
    `INSERT INTO public.credit_transactions (workspace_id, user_id, source, credits, created_at)
     SELECT ws, ws * 20 + i % 20, (ARRAY['execution','api','storage','refund'])[1 + i % 4],
            round((random() * 10)::numeric, 4), $1::timestamptz + random() * interval '1 hour'
     FROM (SELECT i, 1 + floor(1000 * random() ^ 3)::int AS ws FROM generate_series(1, $2::int) i) x`,
    [start, Math.ceil((rows * 2) / 5)],
  );
  return { start, end: new Date(start.getTime() + 3_600_000) };
}

export function pairedCase(
  name: string,
  measured: number[],
  referenceName: string,
  reference: number[],
  goal?: CaseResult['goal'],
): CaseResult {
  const spread = pairedRatios(measured, reference);
  const ratio = spread.median;
  const met = goal === undefined ? undefined : goal.op === '<=' ? ratio <= goal.value : ratio >= goal.value;
  const within = goal !== undefined && goal.value >= spread.q1 && goal.value <= spread.q3;
  return {
    name,
    measured: summarize(measured),
    reference: { name: referenceName, summary: summarize(reference) },
    ratio,
    spread,
    goal,
    met,
    ...(within ? { note: 'the goal is within the IQR of the paired ratios: not decided' } : {}),
  };
}

/**
 * A user's backfill: `backfill_aggregations(end − days, end, 'hourly')` enqueued on the Redis broker
 * and run by one worker (concurrency 1), through its real path: one `backfill_window` run a day, each
 * refreshing the three hourly rollups over its 24 hours into tables that already hold those rows,
 * then the summing-up run. Timed from enqueue to the end of the summing-up run (the worker starts
 * before, untimed). ÷ the bare GROUP BY of the three rollups over the same range (bareGroupBy).
 *
 * Each run's records say where its time went (BackfillBreakdown): two more rows, from the same
 * runs and pairs, split the backfill into the engine's refreshes (÷ the same bare GROUP BY) and the
 * rest (the window runs' own statements and the job system around them).
 */
export async function backfillUserForm(
  db: Dataset,
  options: { end: Date; days: number; pairs: PairCount },
): Promise<CaseResult[]> {
  const range = { start: new Date(options.end.getTime() - options.days * 86_400_000), end: options.end };
  const goal = 1.3;
  const breakdowns: BackfillBreakdown[] = [];
  const { measured, reference } = await interleavedPairs({
    minPairs: options.pairs.min,
    maxPairs: options.pairs.max,
    goal,
    measure: async () => {
      const scaling = await backfillScaling('redis', db, {
        end: options.end,
        days: options.days,
        workerCounts: [1],
      });
      const breakdown = scaling.breakdown.get(1);
      if (breakdown !== undefined) breakdowns.push(breakdown);
      return scaling.byWorkers.get(1) ?? Number.NaN;
    },
    reference: () => bareGroupBy(db.pool, hourlyRollups, range),
  });
  const user = pairedCase(
    `backfill_aggregations over ${options.days} days, hourly (${hourlyRollups.length} rollups, ${breakdowns[0]?.windows ?? '?'} windows as run, BACKFILL_WINDOW_DAYS ${process.env.BACKFILL_WINDOW_DAYS ?? 'unset'}), into existing rows, 1 worker, Redis`,
    measured,
    `bare GROUP BY of the ${hourlyRollups.length} rollups over the same rows, CREATE TEMP TABLE … AS`,
    reference,
    { op: '<=', value: goal, text: '≤ 1.3 (TimescaleDB continuous aggregate: 2.2×)' },
  );
  if (breakdowns.length !== measured.length) return [user];
  const refresh = breakdowns.map((b) => b.refreshMs);
  const engine = pairedCase(
    `of which the engine: the ${(breakdowns[0]?.windows ?? options.days) * hourlyRollups.length} refreshes' durationMs summed (session, lock, state, the window statement, state update), from the same runs`,
    refresh,
    'the same bare GROUP BY (same pairs)',
    reference,
  );
  const median = (xs: number[]): number => summarize(xs).median;
  const rollups = Object.keys(breakdowns[0]?.byRollup ?? {});
  engine.note = `per rollup (median): ${rollups
    .map((r) => `${r} ${formatMs(median(breakdowns.map((b) => b.byRollup[r] ?? 0)))}`)
    .join(', ')}`;
  const rest = breakdowns.map((b) => b.wallMs - b.refreshMs);
  const outside = breakdowns.map((b) => b.wallMs - b.windowRunsMs);
  const restCase = pairedCase(
    'of which the rest: wall − the refreshes (the window runs’ claim and done statements, commits, run records, and the job system around the runs)',
    rest,
    'the same bare GROUP BY (same pairs)',
    reference,
  );
  restCase.note = `outside the window runs (enqueue, flow, expand, claims, the summing-up run, the result poll every 100 ms): median ${formatMs(median(outside))}; inside them beyond the refreshes: ${formatMs(median(breakdowns.map((b) => b.windowRunsMs - b.refreshMs)))}`;
  return [user, engine, restCase];
}

/** Incremental run of the hourly rollups after one new hour in all three sources ÷ the bare GROUP BY of that hour. */
export async function incrementalHour(
  pool: Pool,
  pairs: PairCount,
  rowsPerHour: number,
): Promise<{ result: CaseResult; incremental: number[] }> {
  const refreshHourly = async (): Promise<void> => {
    for (const def of hourlyRollups) await refreshRollup(pool, def, { timezone: 'UTC', mode: incremental });
  };
  await refreshHourly();
  let hour: Range | undefined;
  const goal = 2.0;
  const { measured, reference } = await interleavedPairs({
    minPairs: pairs.min,
    maxPairs: pairs.max,
    goal,
    before: async () => {
      hour = await insertNewHour(pool, rowsPerHour);
    },
    measure: refreshHourly,
    reference: () => bareGroupBy(pool, hourlyRollups, hour),
  });
  return {
    result: pairedCase(
      `incremental run of the ${hourlyRollups.length} hourly rollups after one new hour (${rowsPerHour} executions, ${Math.ceil(rowsPerHour / 5)} events, ${Math.ceil((rowsPerHour * 2) / 5)} credit rows)`,
      measured,
      'bare GROUP BY of that hour, CREATE TEMP TABLE … AS',
      reference,
      { op: '<=', value: goal, text: '≤ 2.0 (TimescaleDB refresh: about 3×)' },
    ),
    incremental: measured,
  };
}

/** The scattered-updates cases' change: 1,000 random executions across all of history updated. */
export function updateScattered(pool: Pool): Promise<unknown> {
  return pool.query(
    `UPDATE public.execution_logs SET credits_used = credits_used + 1, duration_ms = coalesce(duration_ms, 0) + 1
     WHERE id IN (SELECT 1 + floor(random() * (SELECT max(id) FROM public.execution_logs))::bigint FROM generate_series(1, 1000))`,
  );
}

/**
 * Incremental run after 1,000 rows updated across all of history ÷ a full recompute, taken as the
 * bare GROUP BY over every row (CREATE TEMP TABLE … AS): the cheapest full recompute, so the
 * strictest reference. Also returns the full recompute's times (the materialized-view case).
 */
export async function scatteredUpdates(pool: Pool, pairs: PairCount): Promise<CaseResult> {
  // From a vacuumed table, as the covering-index case (whose index-only scans need the visibility
  // map), so that the two compare: autovacuum does the same on a table between bursts of writes.
  await pool.query('VACUUM ANALYZE public.execution_logs');
  await refreshRollup(pool, hourly, { timezone: 'UTC', mode: incremental });
  const goal = 1 / 50;
  const { measured, reference } = await interleavedPairs({
    minPairs: pairs.min,
    maxPairs: pairs.max,
    goal,
    before: () => updateScattered(pool),
    measure: () => refreshRollup(pool, hourly, { timezone: 'UTC', mode: incremental }),
    reference: () => bareGroupBy(pool, [hourly], undefined),
  });
  return pairedCase(
    'incremental run of execution_metrics_hourly after 1,000 rows updated across history',
    measured,
    'full recompute: bare GROUP BY over every row, CREATE TEMP TABLE … AS',
    reference,
    { op: '<=', value: goal, text: '≤ 1/50 = 0.02 (TimescaleDB re-materializes the range: about 1/1)' },
  );
}

/** Single-row application inserts into execution_logs for `seconds`: their latencies (ms). */
async function insertLatencies(pool: Pool, seconds: number): Promise<number[]> {
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
}

/**
 * The opt-in covering index of execution_metrics_hourly (docs/covering-index.md), built by the
 * engine (installCoveringIndexes, CONCURRENTLY, untimed) and dropped again at the end:
 * - read gain: the scattered-updates case with the index ÷ the same full recompute, interleaved;
 * - write cost: p99 of single-row inserts with the index ÷ without, in rounds that alternate
 *   (the index dropped and rebuilt between rounds; one round is `seconds` of inserts each way).
 */
export async function coveringIndexCases(
  pool: Pool,
  options: { pairs: PairCount; writeRounds: number; seconds: number },
): Promise<CaseResult[]> {
  const covered = { ...hourly, coveringIndex: true };
  const { rows } = await pool.query<{ table: string }>(
    `SELECT pg_size_pretty(pg_relation_size('public.execution_logs')) AS table`,
  );
  const withIndex = async (): Promise<string> => {
    await installCoveringIndexes(pool, [covered]);
    // As scatteredUpdates: from a vacuumed table (index-only scans skip the heap only for pages the
    // visibility map marks all-visible).
    await pool.query('VACUUM ANALYZE public.execution_logs');
    const name = (await planCoveringIndexes(pool, [covered]))[0]?.name ?? '';
    const { rows: size } = await pool.query<{ size: string }>(
      `SELECT pg_size_pretty(pg_relation_size(to_regclass($1))) AS size`,
      [`public.${name}`],
    );
    return size[0]?.size ?? '?';
  };
  const withoutIndex = (): Promise<unknown> => installCoveringIndexes(pool, [hourly]);
  const results: CaseResult[] = [];
  try {
    const indexSize = await withIndex();
    await refreshRollup(pool, hourly, { timezone: 'UTC', mode: incremental });
    const goal = 1 / 50;
    const { measured, reference } = await interleavedPairs({
      minPairs: options.pairs.min,
      maxPairs: options.pairs.max,
      goal,
      before: () => updateScattered(pool),
      measure: () => refreshRollup(pool, hourly, { timezone: 'UTC', mode: incremental }),
      reference: () => bareGroupBy(pool, [hourly], undefined),
    });
    const read = pairedCase(
      `the same with the opt-in covering index (coveringIndex: true; ${indexSize} on a ${rows[0]?.table ?? '?'} table)`,
      measured,
      'full recompute: bare GROUP BY over every row, CREATE TEMP TABLE … AS',
      reference,
      { op: '<=', value: goal, text: '≤ 1/50 = 0.02' },
    );
    results.push(read);

    // Write cost: rounds alternate which goes first; the index is rebuilt (untimed) for each.
    const withP99: number[] = [];
    const withoutP99: number[] = [];
    const withP50: number[] = [];
    const withoutP50: number[] = [];
    let counts = { with: 0, without: 0 };
    for (let round = 0; round < options.writeRounds; round += 1) {
      for (const present of round % 2 === 0 ? [true, false] : [false, true]) {
        if (present) await withIndex();
        else await withoutIndex();
        const latencies = await insertLatencies(pool, options.seconds);
        (present ? withP99 : withoutP99).push(percentile(latencies, 99));
        (present ? withP50 : withoutP50).push(percentile(latencies, 50));
        counts = present
          ? { ...counts, with: counts.with + latencies.length }
          : { ...counts, without: counts.without + latencies.length };
      }
    }
    const spread = pairedRatios(withP99, withoutP99);
    const median = pairedRatios(withP50, withoutP50);
    results.push({
      name: 'application insert p99 with the covering index (one more index on execution_logs)',
      measured: summarize(withP99),
      reference: { name: 'p99 without it', summary: summarize(withoutP99) },
      ratio: spread.median,
      spread,
      note: `${options.writeRounds} rounds of ${options.seconds} s each way; ${counts.with} inserts with, ${counts.without} without; p50 with ÷ without ${formatRatios(median)}; no goal: the price of the read gain above`,
    });
  } finally {
    await withoutIndex();
  }
  return results;
}

/** The same hourly aggregate as a plain materialized view: REFRESH ÷ our incremental run after one new hour. */
export async function plainMaterializedView(
  pool: Pool,
  runs: number,
  incrementalHourRuns: number[],
): Promise<CaseResult> {
  await pool.query(`DROP MATERIALIZED VIEW IF EXISTS public.bench_mv_hourly`);
  await pool.query(`CREATE MATERIALIZED VIEW public.bench_mv_hourly AS ${plainGroupBy(hourly)}`);
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
  const m = summarize(refresh);
  const ref = summarize(incrementalHourRuns);
  const r: CaseResult = {
    name: 'plain REFRESH MATERIALIZED VIEW of the hourly execution aggregate',
    measured: m,
    reference: { name: 'our incremental run of the three hourly rollups after one new hour', summary: ref },
    ratio: m.median / ref.median,
  };
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
          runs: runHistory(pool),
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
