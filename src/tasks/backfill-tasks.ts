import type { Pool } from '../db/index.ts';
import { refreshGrain, type RollupTaskResult } from './rollup-tasks.ts';
import { backfillArgs, grainOfGranularity, MAX_BACKFILL_DAYS, type Granularity } from './task-args.ts';
import type { TaskDefinition } from './task-definition.ts';
import { parseIsoInZone, splitIntoWindows, type TimeWindow } from './time-window.ts';
import { z } from 'zod';

export interface BackfillArgs {
  start_date: string;
  end_date: string;
  granularity: Granularity;
}

export interface BackfillProgress {
  backfillId: string;
  total: number;
  done: number;
  failed: number;
  running: number;
  pending: number;
  cancelled: number;
  /** Seconds until done at the pace so far; undefined before the first window finished. */
  etaSeconds: number | undefined;
}

export interface BackfillResult extends BackfillProgress {
  status: 'completed' | 'failed' | 'cancelled';
  granularity: Granularity;
  range: { start: string; end: string };
}

/**
 * A backfill is known by its range and granularity: rerunning the same backfill after a crash or a
 * cancel redoes only the windows not done; rerunning one that completed recomputes it all.
 */
export function backfillId(args: BackfillArgs, zone: string): string {
  const start = parseIsoInZone(args.start_date, zone)?.toISOString() ?? args.start_date;
  const end = parseIsoInZone(args.end_date, zone)?.toISOString() ?? args.end_date;
  return `${args.granularity} ${start} ${end}`;
}

export function backfillWindows(args: BackfillArgs, zone: string): TimeWindow[] {
  const start = parseIsoInZone(args.start_date, zone);
  const end = parseIsoInZone(args.end_date, zone);
  if (start === undefined || end === undefined) return [];
  return splitIntoWindows(grainOfGranularity[args.granularity], { start, end }, zone, MAX_BACKFILL_DAYS * 24);
}

/**
 * Records the windows of a backfill and returns those still to do. Windows of an earlier run of the
 * same backfill that are done are kept (resume), unless all are done (then it starts over).
 */
export async function planBackfill(
  pool: Pool,
  id: string,
  windows: readonly TimeWindow[],
): Promise<TimeWindow[]> {
  const { rows } = await pool.query<{ open: number; total: number }>(
    `SELECT count(*) FILTER (WHERE state <> 'done') AS open, count(*) AS total
     FROM aggjobs.backfill_windows WHERE backfill_id = $1`,
    [id],
  );
  if ((rows[0]?.total ?? 0) > 0 && rows[0]?.open === 0) {
    await pool.query(
      `UPDATE aggjobs.backfill_windows SET state = 'pending', updated_at = now() WHERE backfill_id = $1`,
      [id],
    );
  }
  await pool.query(
    `INSERT INTO aggjobs.backfill_windows (backfill_id, window_start, window_end)
     SELECT $1, s, e FROM unnest($2::timestamptz[], $3::timestamptz[]) AS w(s, e)
     ON CONFLICT (backfill_id, window_start) DO UPDATE
       SET state = CASE WHEN backfill_windows.state = 'done' THEN 'done' ELSE 'pending' END, updated_at = now()`,
    [id, windows.map((w) => w.start), windows.map((w) => w.end)],
  );
  const open = await pool.query<{ window_start: Date; window_end: Date }>(
    `SELECT window_start, window_end FROM aggjobs.backfill_windows
     WHERE backfill_id = $1 AND state <> 'done' ORDER BY window_start`,
    [id],
  );
  return open.rows.map((r) => ({ start: r.window_start, end: r.window_end }));
}

export async function backfillProgress(pool: Pool, id: string, startedAt?: Date): Promise<BackfillProgress> {
  const { rows } = await pool.query<{ state: string; n: number; first: Date | null; last: Date | null }>(
    `SELECT state, count(*) AS n, min(updated_at) AS first, max(updated_at) AS last
     FROM aggjobs.backfill_windows WHERE backfill_id = $1 GROUP BY state`,
    [id],
  );
  const n = (state: string): number => rows.find((r) => r.state === state)?.n ?? 0;
  const total = rows.reduce((s, r) => s + r.n, 0);
  const done = n('done');
  const doneRow = rows.find((r) => r.state === 'done');
  const from = startedAt ?? doneRow?.first ?? undefined;
  const elapsed = from !== undefined && doneRow?.last != null ? doneRow.last.getTime() - from.getTime() : 0;
  const remaining = total - done - n('failed') - n('cancelled');
  return {
    backfillId: id,
    total,
    done,
    failed: n('failed'),
    running: n('running'),
    pending: n('pending'),
    cancelled: n('cancelled'),
    etaSeconds: done > 0 && elapsed > 0 ? Math.round(((elapsed / done) * remaining) / 1000) : undefined,
  };
}

/**
 * Stops a backfill: windows not done are marked cancelled (queued ones finish at once; the caller
 * terminates running ones, whose transactions roll back). Returns how many.
 */
export async function cancelBackfill(pool: Pool, id: string): Promise<number> {
  const { rowCount } = await pool.query(
    `UPDATE aggjobs.backfill_windows SET state = 'cancelled', updated_at = now()
     WHERE backfill_id = $1 AND state IN ('pending', 'running')`,
    [id],
  );
  return rowCount ?? 0;
}

/**
 * The seed's backfill. Enqueued, it fans out: one `backfill_window` job per window (a BullMQ flow,
 * processed in parallel by every worker), and this task runs last, to sum up.
 */
export const backfillAggregationsTask: TaskDefinition<BackfillArgs, BackfillArgs, BackfillResult> = {
  name: 'backfill_aggregations',
  queue: 'aggregation',
  description: 'recompute the rollups of one granularity over a date range, in parallel windows',
  positional: ['start_date', 'end_date', 'granularity'],
  schema: backfillArgs,
  hardLimitSeconds: 3600,
  async expand(env, args) {
    const zone = env.settings.analyticsTimezone;
    const id = backfillId(args, zone);
    const todo = await planBackfill(env.pool, id, backfillWindows(args, zone));
    return todo.map((w) => ({
      task: 'backfill_window',
      args: {
        backfill_id: id,
        granularity: args.granularity,
        window_start: w.start.toISOString(),
        window_end: w.end.toISOString(),
      },
    }));
  },
  async run(ctx, args) {
    const zone = ctx.settings.analyticsTimezone;
    const id = backfillId(args, zone);
    const progress = await backfillProgress(ctx.pool, id);
    const unfinished = progress.pending + progress.running;
    const status =
      progress.failed > 0 || (unfinished > 0 && progress.cancelled === 0)
        ? 'failed'
        : progress.cancelled > 0
          ? 'cancelled'
          : 'completed';
    const result: BackfillResult = {
      ...progress,
      status,
      granularity: args.granularity,
      range: { start: args.start_date, end: args.end_date },
    };
    if (status === 'failed') {
      throw Object.assign(
        new Error(`backfill ${id}: ${progress.failed} window(s) failed; rerun it to redo them`),
        {
          result,
        },
      );
    }
    return result;
  },
};

export interface BackfillWindowArgs {
  backfill_id: string;
  granularity: Granularity;
  window_start: string;
  window_end: string;
}

export type BackfillWindowResult = (RollupTaskResult & { skipped?: undefined }) | { skipped: string };

/** One window of a backfill (internal: enqueued by backfill_aggregations). */
export const backfillWindowTask: TaskDefinition<
  BackfillWindowArgs,
  BackfillWindowArgs,
  BackfillWindowResult
> = {
  name: 'backfill_window',
  queue: 'aggregation',
  description: 'one window of a backfill (enqueued by backfill_aggregations)',
  positional: ['backfill_id', 'granularity', 'window_start', 'window_end'],
  schema: () =>
    z.strictObject({
      backfill_id: z.string().min(1),
      granularity: z.enum(['hourly', 'daily', 'weekly', 'monthly']),
      window_start: z.iso.datetime(),
      window_end: z.iso.datetime(),
    }),
  hardLimitSeconds: 3600,
  async run(ctx, args) {
    const claimed = await ctx.pool.query(
      `UPDATE aggjobs.backfill_windows SET state = 'running', run_id = $3, updated_at = now()
       WHERE backfill_id = $1 AND window_start = $2 AND state NOT IN ('done', 'cancelled')`,
      [args.backfill_id, args.window_start, ctx.runId],
    );
    if (claimed.rowCount === 0) return { skipped: 'window done or cancelled' };
    try {
      const result = await refreshGrain(ctx, grainOfGranularity[args.granularity], {
        start: new Date(args.window_start),
        end: new Date(args.window_end),
      });
      await ctx.pool.query(
        `UPDATE aggjobs.backfill_windows SET state = 'done', result = $3, error = NULL, updated_at = now()
         WHERE backfill_id = $1 AND window_start = $2`,
        [args.backfill_id, args.window_start, JSON.stringify(result)],
      );
      return result;
    } catch (error) {
      await ctx.pool
        .query(
          `UPDATE aggjobs.backfill_windows SET state = 'failed', error = $3, updated_at = now()
           WHERE backfill_id = $1 AND window_start = $2 AND state = 'running'`,
          [args.backfill_id, args.window_start, error instanceof Error ? error.message : String(error)],
        )
        .catch(() => undefined);
      throw error;
    }
  },
};
