/**
 * Wall-clock time in an IANA time zone, without a library: `Intl.DateTimeFormat` gives the local
 * fields of an instant; the reverse (local → instant) tries the two offsets around it.
 *
 * Terminology
 * - instant:    a point in time (a `Date`).
 * - wall time:  what a clock in the zone shows: year, month (1-12), day, hour, minute, second.
 * - gap:        wall times that do not exist (spring forward); `wallToInstant` maps them to the end of the gap.
 * - overlap:    wall times that happen twice (fall back); `wallToInstant` gives the first.
 */
export interface WallTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, f);
  }
  return f;
}

/** The wall time of `instant` in `zone`. */
export function toWall(instant: Date, zone: string): WallTime {
  const wall: WallTime = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
  for (const part of formatter(zone).formatToParts(instant)) {
    if (part.type in wall) wall[part.type as keyof WallTime] = Number(part.value);
  }
  return wall;
}

/** A wall time as milliseconds of a clock that has no zone (UTC arithmetic on wall times). */
export function wallMillis(w: WallTime): number {
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
}

export function fromWallMillis(ms: number): WallTime {
  const d = new Date(ms);
  return {
    year: d.getUTCFullYear(),
    month: d.getUTCMonth() + 1,
    day: d.getUTCDate(),
    hour: d.getUTCHours(),
    minute: d.getUTCMinutes(),
    second: d.getUTCSeconds(),
  };
}

/** Offset of `zone` from UTC at `instant`, in milliseconds (positive east of Greenwich). */
export function offsetAt(instant: Date, zone: string): number {
  const ms = Math.floor(instant.getTime() / 1000) * 1000;
  return wallMillis(toWall(new Date(ms), zone)) - ms;
}

/**
 * The first instant whose wall time in `zone` is `wall`; in a gap, the instant the gap ends (the
 * clock jumps past `wall`, so the earliest instant showing a later time).
 */
export function wallToInstant(wall: WallTime, zone: string): Date {
  const guess = wallMillis(wall);
  const day = 86_400_000;
  const candidates = [
    guess - offsetAt(new Date(guess - day), zone),
    guess - offsetAt(new Date(guess + day), zone),
  ].sort((a, b) => a - b);
  for (const c of candidates) {
    if (wallMillis(toWall(new Date(c), zone)) === guess) return new Date(c);
  }
  // In a gap: binary-search the first instant whose wall time is past `wall`.
  let lo = candidates[0] ?? guess;
  let hi = candidates[1] ?? guess;
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (wallMillis(toWall(new Date(mid), zone)) > guess) hi = mid;
    else lo = mid;
  }
  return new Date(hi);
}

/** Adds calendar days to a wall date (time kept). */
export function addWallDays(wall: WallTime, days: number): WallTime {
  return fromWallMillis(wallMillis(wall) + days * 86_400_000);
}

/** ISO weekday of a wall date: 1 Monday … 7 Sunday. */
export function isoWeekday(wall: WallTime): number {
  const d = new Date(Date.UTC(wall.year, wall.month - 1, wall.day)).getUTCDay();
  return d === 0 ? 7 : d;
}
