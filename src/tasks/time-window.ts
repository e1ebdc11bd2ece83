import { DateTime, type DateObjectUnits } from 'luxon';

/** The grains a task can target. */
export type TaskGrain = 'hour' | 'day' | 'week' | 'month';

export interface TimeWindow {
  start: Date;
  end: Date;
}

const ISO =
  /^(\d{4,6})-(\d{2})-(\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * The instant a clock in `zone` shows `wall`, read as cron.ts reads a schedule's time: one the clocks
 * skip is shifted forward by the gap (02:30 → 03:30); one they show twice is its first occurrence.
 */
function wallTimeIn(wall: DateObjectUnits, zone: string): Date {
  const dt = DateTime.fromObject(wall, { zone });
  // Luxon takes the later of an overlap's two instants; the earlier has the offset of the day before.
  const offsetBefore = DateTime.fromMillis(dt.toMillis() - 86_400_000, { zone }).offset;
  if (offsetBefore > dt.offset) {
    const earlier = DateTime.fromMillis(dt.toMillis() - (offsetBefore - dt.offset) * 60_000, { zone });
    if (earlier.hour === dt.hour && earlier.minute === dt.minute) return earlier.toJSDate();
  }
  return dt.toJSDate();
}

/**
 * Parses an ISO date or date-time. Without an offset it is a wall time in `zone` (the seed passes
 * `datetime(2025, 1, 9, 14, 0).isoformat()`, which has none). Returns undefined when malformed.
 */
export function parseIsoInZone(value: string, zone: string): Date | undefined {
  const m = ISO.exec(value.trim());
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map((v) =>
    v === undefined ? 0 : Number(v),
  ) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined;
  const check = new Date(Date.UTC(year, month - 1, day));
  if (check.getUTCDate() !== day || year < 1) return undefined;
  const offset = m[7];
  if (offset === undefined) return wallTimeIn({ year, month, day, hour, minute, second }, zone);
  const utc = Date.UTC(year, month - 1, day, hour, minute, second);
  if (offset === 'Z') return new Date(utc);
  const sign = offset.startsWith('-') ? -1 : 1;
  const digits = offset.slice(1).replace(':', '');
  const minutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2));
  return new Date(utc - sign * minutes * 60_000);
}

/** The bucket of `grain` that holds `instant`, in `zone`: the same buckets as the engine's `date_trunc`. */
export function bucketOf(grain: TaskGrain, instant: Date, zone: string): TimeWindow {
  const local = DateTime.fromJSDate(instant, { zone });
  if (grain === 'hour') {
    // Subtracting the local minutes and seconds is right in every zone, in both halves of an overlap.
    const start = new Date(
      instant.getTime() - (local.minute * 60 + local.second) * 1000 - (instant.getTime() % 1000),
    );
    return { start, end: new Date(start.getTime() + 3_600_000) };
  }
  // Luxon's weeks start on Monday (ISO), as PostgreSQL's date_trunc('week'). A midnight the clocks
  // skip starts its day when the gap ends, as in PostgreSQL.
  const first = local.startOf(grain);
  const next = first.plus({ [`${grain}s`]: 1 }).startOf(grain);
  return { start: firstInstant(first, grain), end: firstInstant(next, grain) };
}

/**
 * A midnight the clocks go back to (01:00 becomes 00:00 again, America/Havana) happens twice, and its
 * day starts at the first: the rows of the engine's bucket start there (bucketRowsStartSql).
 */
function firstInstant(midnight: DateTime, grain: Exclude<TaskGrain, 'hour'>): Date {
  // No clock change in the two hours before: an instant before midnight lies in the bucket before.
  if (midnight.minus({ minutes: 120 }).offset === midnight.offset) return midnight.toJSDate();
  const bucket = (t: DateTime): string =>
    grain === 'week'
      ? `${t.weekYear}-${t.weekNumber}`
      : t.toFormat(grain === 'day' ? 'yyyy-MM-dd' : 'yyyy-MM');
  for (const minutes of [120, 60, 30]) {
    const earlier = midnight.minus({ minutes }); // real minutes: an earlier instant
    if (bucket(earlier) === bucket(midnight)) return earlier.toJSDate();
  }
  return midnight.toJSDate();
}

/** A backfill window's buckets when BACKFILL_WINDOW_DAYS is unset: a day, a week, four weeks, a month. */
const defaultBucketsPerWindow: Record<TaskGrain, number> = { hour: 24, day: 7, week: 4, month: 1 };

/**
 * How many buckets of a grain one backfill window holds (a window is one job): `days` of source
 * time (BACKFILL_WINDOW_DAYS), rounded up to whole buckets, at least one; unset, the defaults above.
 */
export function bucketsPerBackfillWindow(grain: TaskGrain, days: number | undefined): number {
  if (days === undefined) return defaultBucketsPerWindow[grain];
  if (grain === 'hour') return days * 24;
  if (grain === 'day') return days;
  return Math.max(1, Math.ceil(days / (grain === 'week' ? 7 : 31)));
}

/** Splits [start, end) into windows of whole buckets (the first widened down, the last up). */
export function splitIntoWindows(
  grain: TaskGrain,
  range: TimeWindow,
  zone: string,
  bucketsPerWindow: number,
  limit: number,
): TimeWindow[] {
  const windows: TimeWindow[] = [];
  let cursor = bucketOf(grain, range.start, zone).start;
  while (cursor < range.end) {
    const start = cursor;
    for (let i = 0; i < bucketsPerWindow && cursor < range.end; i += 1) {
      cursor = bucketOf(grain, cursor, zone).end;
    }
    windows.push({ start, end: cursor });
    if (windows.length > limit) break;
  }
  return windows;
}
