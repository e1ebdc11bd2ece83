import { addWallDays, isoWeekday, toWall, wallToInstant, type WallTime } from './zoned-time.ts';

/** The grains a task can target. */
export type TaskGrain = 'hour' | 'day' | 'week' | 'month';

export interface TimeWindow {
  start: Date;
  end: Date;
}

const ISO =
  /^(\d{4,6})-(\d{2})-(\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

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
  const wall: WallTime = { year, month, day, hour, minute, second };
  const offset = m[7];
  if (offset === undefined) return wallToInstant(wall, zone);
  const utc = Date.UTC(year, month - 1, day, hour, minute, second);
  if (offset === 'Z') return new Date(utc);
  const sign = offset.startsWith('-') ? -1 : 1;
  const digits = offset.slice(1).replace(':', '');
  const minutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2));
  return new Date(utc - sign * minutes * 60_000);
}

function midnight(wall: WallTime): WallTime {
  return { ...wall, hour: 0, minute: 0, second: 0 };
}

/** The bucket of `grain` that holds `instant`, in `zone`: the same buckets as the engine's `date_trunc`. */
export function bucketOf(grain: TaskGrain, instant: Date, zone: string): TimeWindow {
  const wall = toWall(instant, zone);
  if (grain === 'hour') {
    // Subtracting the local minutes and seconds is right in every zone, in both halves of an overlap.
    const start = new Date(
      instant.getTime() - (wall.minute * 60 + wall.second) * 1000 - (instant.getTime() % 1000),
    );
    return { start, end: new Date(start.getTime() + 3_600_000) };
  }
  let first: WallTime;
  let next: WallTime;
  if (grain === 'day') {
    first = midnight(wall);
    next = addWallDays(first, 1);
  } else if (grain === 'week') {
    first = addWallDays(midnight(wall), 1 - isoWeekday(wall));
    next = addWallDays(first, 7);
  } else {
    first = { ...midnight(wall), day: 1 };
    next =
      wall.month === 12 ? { ...first, year: wall.year + 1, month: 1 } : { ...first, month: wall.month + 1 };
  }
  return { start: wallToInstant(first, zone), end: wallToInstant(next, zone) };
}

/** How many buckets of a grain one backfill window holds: a window is one job. */
export const bucketsPerBackfillWindow: Record<TaskGrain, number> = { hour: 24, day: 7, week: 4, month: 1 };

/** Splits [start, end) into windows of whole buckets (the first widened down, the last up). */
export function splitIntoWindows(
  grain: TaskGrain,
  range: TimeWindow,
  zone: string,
  limit: number,
): TimeWindow[] {
  const windows: TimeWindow[] = [];
  let cursor = bucketOf(grain, range.start, zone).start;
  while (cursor < range.end) {
    const start = cursor;
    for (let i = 0; i < bucketsPerBackfillWindow[grain] && cursor < range.end; i += 1) {
      cursor = bucketOf(grain, cursor, zone).end;
    }
    windows.push({ start, end: cursor });
    if (windows.length > limit) break;
  }
  return windows;
}
