import { SqlState, sqlStateOf, withTransaction, type Pool, type Queryable } from '../db/index.ts';
import { qualified, ident } from '../rollups/sql-identifier.ts';
import type { BackfillArgs } from './backfill-tasks.ts';
import { rollupsOfGrain } from './rollup-tasks.ts';
import { grainOfGranularity, MAX_BACKFILL_DAYS } from './task-args.ts';
import {
  bucketsPerBackfillWindow,
  parseIsoInZone,
  splitIntoWindows,
  type TaskGrain,
  type TimeWindow,
} from './time-window.ts';

/**
 * Source rows a backfill window aims at when BACKFILL_WINDOW_DAYS is unset: about 80 s of work on
 * two cores by extrapolation (the 3 hourly rollups recomputed 26M rows in ~40 s, bench/report.md),
 * far inside the window's 3,600 s limit even on a machine ten times slower.
 */
export const WINDOW_TARGET_ROWS = 50_000_000;
/** The longest window cut by rows: a month of source time. */
export const MAX_ROW_SIZED_WINDOW_DAYS = 31;
const DAY_MS = 86_400_000;

/** A backfill's range, or undefined when its dates do not parse (validation said why). */
function rangeOf(args: BackfillArgs, zone: string): TimeWindow | undefined {
  const start = parseIsoInZone(args.start_date, zone);
  const end = parseIsoInZone(args.end_date, zone);
  return start === undefined || end === undefined ? undefined : { start, end };
}

/**
 * A backfill's windows: its range cut into `windowDays` of source time (BACKFILL_WINDOW_DAYS, or
 * windowDaysByRows), whole buckets; undefined: a day of hours, a week of days, four weeks, a month.
 */
export function backfillWindows(
  args: BackfillArgs,
  zone: string,
  windowDays: number | undefined,
): TimeWindow[] {
  const range = rangeOf(args, zone);
  if (range === undefined) return [];
  const grain = grainOfGranularity[args.granularity];
  const buckets = bucketsPerBackfillWindow(grain, windowDays);
  return splitIntoWindows(grain, range, zone, buckets, MAX_BACKFILL_DAYS * 24);
}

/** Consecutive spans of at most `days` days that cover `range`. */
function spansOf(range: TimeWindow, days: number): TimeWindow[] {
  const spans: TimeWindow[] = [];
  for (let start = range.start.getTime(); start < range.end.getTime(); start += days * DAY_MS) {
    spans.push({
      start: new Date(start),
      end: new Date(Math.min(start + days * DAY_MS, range.end.getTime())),
    });
  }
  return spans;
}

/**
 * False where the planner's estimate of `source` means nothing: a table distributed by Citus (the
 * coordinator's plan does not count its rows), or a table or partition that holds pages but was
 * never analyzed (the planner would guess a fixed share of it).
 */
async function estimable(db: Queryable, source: string, citus: boolean): Promise<boolean> {
  if (citus) {
    const distributed = await db.query(`SELECT FROM pg_dist_partition WHERE logicalrelid = $1::regclass`, [
      source,
    ]);
    if (distributed.rowCount !== 0) return false;
  }
  // $1 the source: itself when plain, its leaf partitions when partitioned (pg_partition_tree has
  // no rows for a plain table)
  const { rows } = await db.query<{ unanalyzed: boolean }>(
    `SELECT EXISTS (
       SELECT FROM pg_class AS c
       WHERE c.oid IN (SELECT $1::regclass UNION ALL SELECT relid FROM pg_partition_tree($1::regclass) WHERE isleaf)
         AND c.relkind = 'r' AND c.reltuples < 0 AND pg_relation_size(c.oid) > 0
     ) AS unanalyzed`,
    [source],
  );
  return rows[0]?.unanalyzed === false;
}

/**
 * The window length when BACKFILL_WINDOW_DAYS is unset: as many days as hold about `targetRows`
 * (WINDOW_TARGET_ROWS) rows of the grain's sources at the range's densest (each month of it
 * estimated apart), 1 to 31, by the planner's estimates (EXPLAIN: statistics, no scan). A day's rows
 * lie on pages shared with rows that arrived late, so short windows read many pages more than once
 * (docs/performance.md); a month or WINDOW_TARGET_ROWS, whichever comes first, reads them about once
 * and keeps each window short. Undefined (the per-grain defaults) where no estimate can be had: a
 * source distributed by Citus or never analyzed, or one locked by DDL for 2 s.
 */
export async function windowDaysByRows(
  pool: Pool,
  grain: TaskGrain,
  args: BackfillArgs,
  zone: string,
  targetRows = WINDOW_TARGET_ROWS,
): Promise<number | undefined> {
  const range = rangeOf(args, zone);
  if (range === undefined) return undefined;
  const sources = [...new Map(rollupsOfGrain(grain).map((def) => [def.source, def.timeColumn]))];
  try {
    return await withTransaction(pool, async (tx) => {
      // The estimate gives up on a source that DDL holds (ALTER TABLE, VACUUM FULL) rather than wait.
      await tx.query(`SET LOCAL lock_timeout = '2s'`);
      const citus = await tx.query<{ present: boolean }>(
        `SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL AS present`,
      );
      for (const [source] of sources) {
        if (!(await estimable(tx, source, citus.rows[0]?.present === true))) return undefined;
      }
      let densest = 0;
      for (const span of spansOf(range, MAX_ROW_SIZED_WINDOW_DAYS)) {
        let rows = 0;
        for (const [source, timeColumn] of sources) {
          // $1, $2 the span
          const plan = await tx.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(
            `EXPLAIN (FORMAT JSON) SELECT FROM ${qualified(source)}
             WHERE ${ident(timeColumn)} >= $1::timestamptz AND ${ident(timeColumn)} < $2::timestamptz`,
            [span.start, span.end],
          );
          rows += plan.rows[0]?.['QUERY PLAN'][0].Plan['Plan Rows'] ?? 0;
        }
        densest = Math.max(
          densest,
          rows / Math.max(1 / 24, (span.end.getTime() - span.start.getTime()) / DAY_MS),
        );
      }
      if (densest <= 0) return MAX_ROW_SIZED_WINDOW_DAYS;
      return Math.min(MAX_ROW_SIZED_WINDOW_DAYS, Math.max(1, Math.floor(targetRows / densest)));
    });
  } catch (error) {
    if (sqlStateOf(error) === SqlState.lockNotAvailable) return undefined;
    throw error;
  }
}

/**
 * The windows of an earlier run of this backfill that did not finish, or undefined: a rerun
 * resumes the cut it started with when BACKFILL_WINDOW_DAYS is unset (the estimate may have moved).
 */
export async function unfinishedCut(pool: Pool, id: string): Promise<TimeWindow[] | undefined> {
  const { rows } = await pool.query<{ window_start: Date; window_end: Date; open: boolean }>(
    `SELECT window_start, window_end, bool_or(state <> 'done') OVER () AS open
     FROM aggjobs.backfill_windows WHERE backfill_id = $1 ORDER BY window_start`,
    [id],
  );
  if (rows[0]?.open !== true) return undefined;
  return rows.map((r) => ({ start: r.window_start, end: r.window_end }));
}

/**
 * Records the windows of a backfill and returns those still to do. Windows of an earlier run of the
 * same backfill that are done are kept (resume), unless all are done (then it starts over). Windows
 * of an earlier run cut otherwise (BACKFILL_WINDOW_DAYS changed) are dropped, whatever their state:
 * the new windows cover their range, and a window run of the old cut still under way matches its
 * window by start and end, so it finds its window gone and touches none of the new ones.
 */
export async function planBackfill(
  pool: Pool,
  id: string,
  windows: readonly TimeWindow[],
  rollupsPerWindow: number,
): Promise<TimeWindow[]> {
  const starts = windows.map((w) => w.start);
  const ends = windows.map((w) => w.end);
  // One at a time per backfill: two reruns cut otherwise never leave a mix of both cuts.
  return await withTransaction(pool, async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(hashtext('aggjobs.backfill'), hashtext($1))`, [id]);
    // $1 backfill id, $2 and $3 the new windows' starts and ends, $4 the rollups a window refreshes
    await tx.query(
      `DELETE FROM aggjobs.backfill_windows
       WHERE backfill_id = $1
         AND (window_start, window_end) NOT IN (SELECT s, e FROM unnest($2::timestamptz[], $3::timestamptz[]) AS w(s, e))`,
      [id, starts, ends],
    );
    const { rows } = await tx.query<{ open: number; total: number }>(
      `SELECT count(*) FILTER (WHERE state <> 'done') AS open, count(*) AS total
       FROM aggjobs.backfill_windows WHERE backfill_id = $1`,
      [id],
    );
    if ((rows[0]?.total ?? 0) > 0 && rows[0]?.open === 0) {
      await tx.query(
        `UPDATE aggjobs.backfill_windows SET state = 'pending', updated_at = now() WHERE backfill_id = $1`,
        [id],
      );
    }
    await tx.query(
      `INSERT INTO aggjobs.backfill_windows (backfill_id, window_start, window_end, rollups_total)
       SELECT $1, s, e, $4 FROM unnest($2::timestamptz[], $3::timestamptz[]) AS w(s, e)
       ON CONFLICT (backfill_id, window_start) DO UPDATE
         SET state = CASE WHEN backfill_windows.state = 'done' THEN 'done' ELSE 'pending' END, updated_at = now(),
             rollups_total = $4,
             rollups_refreshed = '{}',
             -- The time left is paced by the windows claimed from now on (backfill-progress.ts);
             -- a window run of an earlier plan that claims its window again starts its pace anew.
             claimed_at = NULL`,
      [id, starts, ends, rollupsPerWindow],
    );
    const open = await tx.query<{ window_start: Date; window_end: Date }>(
      `SELECT window_start, window_end FROM aggjobs.backfill_windows
       WHERE backfill_id = $1 AND state <> 'done' ORDER BY window_start`,
      [id],
    );
    return open.rows.map((r) => ({ start: r.window_start, end: r.window_end }));
  });
}
