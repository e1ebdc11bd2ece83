import type { Pool } from '../db/index.ts';
import type { BackfillArgs } from './backfill-tasks.ts';
import { grainOfGranularity, MAX_BACKFILL_DAYS } from './task-args.ts';
import {
  bucketsPerBackfillWindow,
  parseIsoInZone,
  splitIntoWindows,
  type TimeWindow,
} from './time-window.ts';

/** A backfill's windows: its range cut into BACKFILL_WINDOW_DAYS of whole buckets (unset: the defaults). */
export function backfillWindows(
  args: BackfillArgs,
  zone: string,
  windowDays: number | undefined,
): TimeWindow[] {
  const start = parseIsoInZone(args.start_date, zone);
  const end = parseIsoInZone(args.end_date, zone);
  if (start === undefined || end === undefined) return [];
  const grain = grainOfGranularity[args.granularity];
  const buckets = bucketsPerBackfillWindow(grain, windowDays);
  return splitIntoWindows(grain, { start, end }, zone, buckets, MAX_BACKFILL_DAYS * 24);
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
): Promise<TimeWindow[]> {
  const starts = windows.map((w) => w.start);
  const ends = windows.map((w) => w.end);
  // $1 backfill id, $2 and $3 the new windows' starts and ends
  await pool.query(
    `DELETE FROM aggjobs.backfill_windows
     WHERE backfill_id = $1
       AND (window_start, window_end) NOT IN (SELECT s, e FROM unnest($2::timestamptz[], $3::timestamptz[]) AS w(s, e))`,
    [id, starts, ends],
  );
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
    [id, starts, ends],
  );
  const open = await pool.query<{ window_start: Date; window_end: Date }>(
    `SELECT window_start, window_end FROM aggjobs.backfill_windows
     WHERE backfill_id = $1 AND state <> 'done' ORDER BY window_start`,
    [id],
  );
  return open.rows.map((r) => ({ start: r.window_start, end: r.window_end }));
}
