import { withTransaction, type Pool, type Queryable } from '../db/index.ts';
import { rollupWatermarkKey } from '../rollups/index.ts';
import { refreshGrain, rollupsOfGrain, type RollupTaskResult } from './rollup-tasks.ts';
import { backfillWindows, planBackfill, unfinishedCut, windowDaysByRows } from './backfill-plan.ts';
import { backfillArgs, grainOfGranularity, shown, type Granularity } from './task-args.ts';
import type { TaskDefinition } from './task-definition.ts';
import { InvalidTaskArgsError, TaskRevokedError } from './task-errors.ts';
import { parseIsoInZone } from './time-window.ts';
import { backfillProgress, type BackfillResult } from './backfill-progress.ts';
import { z } from 'zod';

export interface BackfillArgs {
  start_date: string;
  end_date: string;
  granularity: Granularity;
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
    const grain = grainOfGranularity[args.granularity];
    const todo = await planBackfill(env.pool, id, windows, rollupsOfGrain(grain).length);
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
    // of the same backfill that starts at the same instant is not this one), $5 the names of its
    // granularity's rollups. Claims the window and, in the same transaction, when it is the first
    // window of the backfill to start, makes its parent run `running` (RunHistory.startParent): the
    // parent's duration then covers its windows. A retry of the same run (a transient failure, a
    // worker lost) keeps the rollups it refreshed (those still of the granularity: a deploy may have
    // changed them meanwhile) and its first claim; another run starts them afresh. $6 this
    // attempt: what the window run writes to the window later is fenced by its run and attempt.
    const claim = await withTransaction(ctx.pool, async (tx) => {
      const { rows } = await tx.query<{ was: string | null; claimed: boolean; refreshed: string[] | null }>(
        `WITH claimed AS (
           UPDATE aggjobs.backfill_windows
           SET state = 'running', run_id = $3, claim_attempt = $6, updated_at = now(),
               rollups_total = cardinality($5::text[]),
               claimed_at = CASE WHEN run_id = $3 THEN coalesce(claimed_at, now()) ELSE now() END,
               rollups_refreshed = CASE WHEN run_id = $3
                                        THEN ARRAY(SELECT unnest(rollups_refreshed) INTERSECT SELECT unnest($5::text[]))
                                        ELSE '{}' END
           WHERE backfill_id = $1 AND window_start = $2 AND window_end = $4 AND state NOT IN ('done', 'cancelled')
           RETURNING rollups_refreshed
         )
         SELECT (SELECT state FROM aggjobs.backfill_windows
                 WHERE backfill_id = $1 AND window_start = $2 AND window_end = $4) AS was,
                EXISTS (SELECT FROM claimed) AS claimed, (SELECT rollups_refreshed FROM claimed) AS refreshed`,
        [
          args.backfill_id,
          args.window_start,
          ctx.runId,
          args.window_end,
          rollupsOfGrain(grainOfGranularity[args.granularity]).map((r) => r.name),
          ctx.attempt,
        ],
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
      // $1 backfill id, $2 window start, $3 window end, $4 this run, $5 the rollup refreshed, $6
      // this attempt (another attempt of the run, or another run, may have claimed the window): its
      // refresh has committed, so the progress counts it and a retry skips it (the window's own
      // result comes at the end). A failure to record it is logged, and the window goes on (a retry
      // then refreshes that rollup again).
      const recordProgress = async (rollup: string): Promise<void> => {
        await ctx.pool
          .query(
            `UPDATE aggjobs.backfill_windows
             SET rollups_refreshed = array_append(array_remove(rollups_refreshed, $5), $5), updated_at = now()
             WHERE backfill_id = $1 AND window_start = $2 AND window_end = $3
               AND run_id = $4 AND claim_attempt = $6 AND state = 'running'`,
            [args.backfill_id, args.window_start, args.window_end, ctx.runId, rollup, ctx.attempt],
          )
          .catch((error: unknown) =>
            ctx.logger.warn(
              { err: error, backfill: args.backfill_id },
              'could not record the window’s progress',
            ),
          );
      };
      const result = await refreshGrain(
        ctx,
        grainOfGranularity[args.granularity],
        { start: new Date(args.window_start), end: new Date(args.window_end) },
        { skip: new Set(claim.refreshed ?? []), refreshed: recordProgress },
      );
      // $1 backfill id, $2 window start, $3 result, $4 window end, $5 this run, $6 this attempt:
      // only while the window is still this attempt's (see the claim).
      await ctx.pool.query(
        `UPDATE aggjobs.backfill_windows SET state = 'done', result = $3, error = NULL, updated_at = now()
         WHERE backfill_id = $1 AND window_start = $2 AND window_end = $4 AND run_id = $5 AND claim_attempt = $6`,
        [
          args.backfill_id,
          args.window_start,
          JSON.stringify(result),
          args.window_end,
          ctx.runId,
          ctx.attempt,
        ],
      );
      return result;
    } catch (error) {
      await ctx.pool
        .query(
          `UPDATE aggjobs.backfill_windows SET state = 'failed', error = $3, updated_at = now()
           WHERE backfill_id = $1 AND window_start = $2 AND window_end = $4 AND state = 'running'
             AND run_id = $5 AND claim_attempt = $6`,
          [
            args.backfill_id,
            args.window_start,
            error instanceof Error ? error.message : String(error),
            args.window_end,
            ctx.runId,
            ctx.attempt,
          ],
        )
        .catch(() => undefined);
      throw error;
    }
  },
};
