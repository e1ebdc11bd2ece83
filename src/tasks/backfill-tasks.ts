import { withTransaction, type Pool, type Queryable } from '../db/index.ts';
import { rollupWatermarkKey } from '../rollups/index.ts';
import { refreshGrain, rollupsOfGrain, type RollupTaskResult } from './rollup-tasks.ts';
import { backfillWindows, planBackfill, unfinishedCut, windowDaysByRows } from './backfill-plan.ts';
import { backfillArgs, grainOfGranularity, shown, type Granularity } from './task-args.ts';
import type { TaskDefinition } from './task-definition.ts';
import { InvalidTaskArgsError, TaskRevokedError } from './task-errors.ts';
import { parseIsoInZone } from './time-window.ts';
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
 * Stops a backfill's windows: those not done become cancelled (a window whose run has not claimed
 * it yet then ends at once, revoked), and so do failed ones whose run would retry. Returns how many,
 * and the runs of the windows that were running: the caller terminates them (their transactions
 * roll back).
 */
export async function cancelBackfill(
  pool: Pool,
  id: string,
): Promise<{ cancelled: number; runningRuns: string[] }> {
  // $1 backfill id. The CTE locks the windows it cancels, so a window's claim waits and then sees it.
  const { rows } = await pool.query<{ was: string; run_id: string | null }>(
    `WITH open AS (
       SELECT w.window_start, w.state, w.run_id
       FROM aggjobs.backfill_windows w LEFT JOIN aggjobs.task_runs r ON r.id = w.run_id
       WHERE w.backfill_id = $1
         AND (w.state IN ('pending', 'running')
              OR (w.state = 'failed' AND r.state IN ('queued', 'retrying', 'running')))
       FOR UPDATE OF w
     )
     UPDATE aggjobs.backfill_windows w SET state = 'cancelled', updated_at = now()
     FROM open o WHERE w.backfill_id = $1 AND w.window_start = o.window_start
     RETURNING o.state AS was, o.run_id`,
    [id],
  );
  return {
    cancelled: rows.length,
    runningRuns: rows.flatMap((r) => (r.was === 'running' && r.run_id !== null ? [r.run_id] : [])),
  };
}

/**
 * What a backfill run is, as the pages and the API show it. A cancelled backfill's run is `revoked`
 * with a result whose status is `cancelled` (`succeeded` before cancelling ended it revoked); a live
 * run whose windows are being cancelled is `cancelling`.
 */
export type BackfillStatus =
  | 'queued'
  | 'running'
  | 'retrying'
  | 'cancelling'
  | 'succeeded'
  | 'failed'
  | 'timed_out'
  | 'cancelled'
  | 'revoked';

export function backfillStatusOf(
  run: { state: string; result: unknown },
  progress: BackfillProgress | undefined,
): BackfillStatus {
  const resultStatus =
    typeof run.result === 'object' && run.result !== null && 'status' in run.result
      ? run.result.status
      : undefined;
  switch (run.state) {
    case 'queued':
    case 'running':
    case 'retrying':
      return (progress?.cancelled ?? 0) > 0 ? 'cancelling' : run.state;
    case 'succeeded':
    case 'revoked':
      return resultStatus === 'cancelled' ? 'cancelled' : run.state;
    case 'failed':
    case 'timed_out':
      return run.state;
    default:
      return 'failed';
  }
}

/** The progress a finished backfill run recorded in its result (its windows may have changed since). */
export function recordedBackfillProgress(result: unknown): BackfillProgress | undefined {
  if (typeof result !== 'object' || result === null) return undefined;
  const r = result as Partial<BackfillResult>;
  const count = (v: unknown): number => (typeof v === 'number' ? v : 0);
  if (typeof r.backfillId !== 'string' || typeof r.total !== 'number') return undefined;
  return {
    backfillId: r.backfillId,
    total: r.total,
    done: count(r.done),
    failed: count(r.failed),
    running: count(r.running),
    pending: count(r.pending),
    cancelled: count(r.cancelled),
    etaSeconds: undefined,
  };
}

/**
 * The latest retention cutoff of the sources a grain's rollups read, and of those rollups' own
 * tables (hourly rollups expire): buckets before it are frozen (their source rows or their rollup
 * rows were deleted), so a backfill cannot recompute them. Undefined before any cleanup.
 */
async function retentionWatermark(db: Queryable, granularity: Granularity): Promise<Date | undefined> {
  const rollups = rollupsOfGrain(grainOfGranularity[granularity]);
  const tables = [
    ...new Set(rollups.map((r) => r.source)),
    ...rollups.map((r) => rollupWatermarkKey(r.name)),
  ];
  // $1 source and rollup tables
  const { rows } = await db.query<{ cutoff: Date | null }>(
    `SELECT max(cutoff) AS cutoff FROM aggjobs.retention_watermarks WHERE source_table = ANY($1::text[])`,
    [tables],
  );
  return rows[0]?.cutoff ?? undefined;
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
    // RETENTION_DAYS bounds start_date at validation; a cleanup run with a shorter retention moved
    // the watermark later. Checked before anything is written.
    const watermark = await retentionWatermark(env.pool, args.granularity);
    const start = parseIsoInZone(args.start_date, zone);
    if (watermark !== undefined && start !== undefined && start < watermark) {
      throw new InvalidTaskArgsError('backfill_aggregations', [
        {
          field: 'start_date',
          message:
            `start_date must not be before the retention watermark (${watermark.toISOString()}): older ` +
            `source rows were deleted and their buckets are frozen, got ${shown(args.start_date)}`,
        },
      ]);
    }
    const id = backfillId(args, zone);
    const windows =
      env.settings.backfillWindowDays !== undefined
        ? backfillWindows(args, zone, env.settings.backfillWindowDays)
        : ((await unfinishedCut(env.pool, id)) ??
          backfillWindows(
            args,
            zone,
            await windowDaysByRows(env.pool, grainOfGranularity[args.granularity], args, zone),
          ));
    const todo = await planBackfill(env.pool, id, windows);
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
    // An operator's cancel wins over failed windows: the backfill stopped because someone stopped it.
    const status =
      progress.cancelled > 0 ? 'cancelled' : progress.failed > 0 || unfinished > 0 ? 'failed' : 'completed';
    const result: BackfillResult = {
      ...progress,
      status,
      granularity: args.granularity,
      range: { start: args.start_date, end: args.end_date },
    };
    const failed = progress.failed > 0 ? `, ${progress.failed} failed` : '';
    if (status === 'cancelled') {
      // Ends the run `revoked`, with this result and message (job-processor).
      throw Object.assign(
        new TaskRevokedError(
          ctx.runId,
          `cancelled by an operator: ${progress.done} of ${progress.total} windows done${failed}`,
        ),
        { result },
      );
    }
    if (status === 'failed') {
      const parts = [
        ...(progress.failed > 0 ? [`${progress.failed} window(s) failed`] : []),
        ...(unfinished > 0 ? [`${unfinished} window(s) did not finish`] : []),
      ];
      throw Object.assign(new Error(`backfill ${id}: ${parts.join(', ')}; rerun it to redo them`), {
        result,
      });
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
    // $1 backfill id, $2 window start, $3 this window's run, $4 window end (a window of an older cut
    // of the same backfill that starts at the same instant is not this one). Claims the window and, in the same
    // transaction, when it is the first window of the backfill to start, makes its parent run
    // `running` (RunHistory.startParent): the parent's duration then covers its windows.
    const claim = await withTransaction(ctx.pool, async (tx) => {
      const { rows } = await tx.query<{ was: string | null; claimed: boolean }>(
        `WITH claimed AS (
           UPDATE aggjobs.backfill_windows SET state = 'running', run_id = $3, updated_at = now()
           WHERE backfill_id = $1 AND window_start = $2 AND window_end = $4 AND state NOT IN ('done', 'cancelled')
           RETURNING 1
         )
         SELECT (SELECT state FROM aggjobs.backfill_windows
                 WHERE backfill_id = $1 AND window_start = $2 AND window_end = $4) AS was,
                EXISTS (SELECT FROM claimed) AS claimed`,
        [args.backfill_id, args.window_start, ctx.runId, args.window_end],
      );
      if (rows[0]?.claimed === true) await ctx.runs.startParent(ctx.runId, tx);
      return rows[0];
    });
    if (claim?.claimed !== true) {
      const was = claim?.was ?? null;
      if (was === null) return { skipped: 'no such window' };
      if (was === 'done') return { skipped: 'window done' };
      // Cancelled, before this statement or while it waited for the cancel's lock (`was` is what it
      // saw when it started).
      throw new TaskRevokedError(ctx.runId, 'cancelled with its backfill by an operator');
    }
    try {
      const result = await refreshGrain(ctx, grainOfGranularity[args.granularity], {
        start: new Date(args.window_start),
        end: new Date(args.window_end),
      });
      await ctx.pool.query(
        `UPDATE aggjobs.backfill_windows SET state = 'done', result = $3, error = NULL, updated_at = now()
         WHERE backfill_id = $1 AND window_start = $2 AND window_end = $4`,
        [args.backfill_id, args.window_start, JSON.stringify(result), args.window_end],
      );
      return result;
    } catch (error) {
      await ctx.pool
        .query(
          `UPDATE aggjobs.backfill_windows SET state = 'failed', error = $3, updated_at = now()
           WHERE backfill_id = $1 AND window_start = $2 AND window_end = $4 AND state = 'running'`,
          [
            args.backfill_id,
            args.window_start,
            error instanceof Error ? error.message : String(error),
            args.window_end,
          ],
        )
        .catch(() => undefined);
      throw error;
    }
  },
};
