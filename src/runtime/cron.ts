import { addWallDays, isoWeekday, toWall, wallToInstant, type WallTime } from '../tasks/index.ts';

/**
 * Five-field cron expressions (minute hour day-of-month month day-of-week) evaluated in an IANA
 * time zone, DST-correct:
 *
 * - A schedule with a fixed hour (`0 1 * * *`) names a wall-clock time: it fires once a day even
 *   when the clocks go back (the first 01:00), and when the time does not exist (the clocks jump
 *   over it) it fires when the jump ends — as vixie cron does.
 * - A schedule with any hour (`5 * * * *`, `*\/15 * * * *`) names a pattern of real instants: it
 *   fires in both 01:xx hours when the clocks go back and not in the hour that is skipped.
 *
 * Fields: `*`, numbers, ranges `a-b`, lists `a,b`, steps `*\/n` and `a-b/n`. Day of week 0 or 7 is
 * Sunday. When both day fields are restricted, either may match (POSIX).
 */
export interface Cron {
  readonly source: string;
  readonly minutes: readonly number[];
  readonly hours: readonly number[];
  readonly days: ReadonlySet<number>;
  readonly months: ReadonlySet<number>;
  readonly weekdays: ReadonlySet<number>;
  readonly anyHour: boolean;
  readonly anyDay: boolean;
  readonly anyMonth: boolean;
  readonly anyWeekday: boolean;
}

export class CronSyntaxError extends Error {
  override readonly name = 'CronSyntaxError';
}

function parseField(
  field: string,
  min: number,
  max: number,
  label: string,
): { values: number[]; any: boolean } {
  const values = new Set<number>();
  for (const part of field.split(',')) {
    const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
    if (m === null)
      throw new CronSyntaxError(`cron ${label} field must be *, n, a-b, lists or steps, got "${field}"`);
    const step = m[4] === undefined ? 1 : Number(m[4]);
    const lo = m[1] === '*' ? min : Number(m[2]);
    const hi = m[1] === '*' ? max : m[3] !== undefined ? Number(m[3]) : m[4] !== undefined ? max : lo;
    if (lo < min || hi > max || lo > hi || step < 1) {
      throw new CronSyntaxError(`cron ${label} field must lie in ${min}-${max}, got "${field}"`);
    }
    for (let v = lo; v <= hi; v += step) values.add(v);
  }
  return { values: [...values].sort((a, b) => a - b), any: field === '*' };
}

export function parseCron(source: string): Cron {
  const fields = source.trim().split(/\s+/);
  if (fields.length !== 5) throw new CronSyntaxError(`a cron expression has 5 fields, got "${source}"`);
  const [mi, h, dom, mon, dow] = fields as [string, string, string, string, string];
  const hour = parseField(h, 0, 23, 'hour');
  const weekday = parseField(dow, 0, 7, 'day-of-week');
  const day = parseField(dom, 1, 31, 'day-of-month');
  const month = parseField(mon, 1, 12, 'month');
  return {
    source,
    minutes: parseField(mi, 0, 59, 'minute').values,
    hours: hour.values,
    days: new Set(day.values),
    months: new Set(month.values),
    weekdays: new Set(weekday.values.map((d) => (d === 0 ? 7 : d))),
    anyHour: h === '*' || h.startsWith('*/'),
    anyDay: day.any,
    anyMonth: month.any,
    anyWeekday: weekday.any,
  };
}

function dayMatches(cron: Cron, wall: WallTime): boolean {
  if (!cron.months.has(wall.month)) return false;
  const dom = cron.days.has(wall.day);
  const dow = cron.weekdays.has(isoWeekday(wall));
  if (!cron.anyDay && !cron.anyWeekday) return dom || dow;
  return dom && dow;
}

const MINUTE = 60_000;

/** The first slot strictly after `after`. */
export function nextSlot(cron: Cron, after: Date, zone: string): Date {
  if (cron.anyHour) {
    // Instant space: walk whole minutes, skipping non-matching days and hours in one step.
    let t = Math.floor(after.getTime() / MINUTE) * MINUTE + MINUTE;
    for (let i = 0; i < 100_000; i += 1) {
      const w = toWall(new Date(t), zone);
      if (!dayMatches(cron, w)) {
        t += (24 * 60 - (w.hour * 60 + w.minute)) * MINUTE;
      } else if (!cron.hours.includes(w.hour)) {
        t += (60 - w.minute) * MINUTE;
      } else {
        const m = cron.minutes.find((x) => x >= w.minute);
        if (m === w.minute) return new Date(t);
        t += ((m ?? 60) - w.minute) * MINUTE;
      }
    }
    throw new Error(`cron "${cron.source}" has no slot after ${after.toISOString()}`);
  }
  // Wall-clock space: each matching local date, each wall time on it, mapped to its first instant.
  const start = toWall(after, zone);
  const first: WallTime = { ...start, hour: 0, minute: 0, second: 0 };
  for (let d = 0; d < 4 * 366 + 1; d += 1) {
    const date = addWallDays(first, d);
    if (!dayMatches(cron, date)) continue;
    for (const hour of cron.hours) {
      for (const minute of cron.minutes) {
        const t = wallToInstant({ ...date, hour, minute, second: 0 }, zone);
        if (t.getTime() > after.getTime()) return t;
      }
    }
  }
  throw new Error(`cron "${cron.source}" has no slot after ${after.toISOString()}`);
}

/** How far back the latest slot can be: the longest gap between two slots of this shape. */
function lookbackMs(cron: Cron): number {
  const day = 86_400_000;
  if (!cron.anyMonth) return 4 * 366 * day;
  if (!cron.anyDay) return 32 * day;
  if (!cron.anyWeekday) return 8 * day;
  if (!cron.anyHour || cron.hours.length < 24) return 2 * day;
  return 2 * 3_600_000;
}

/** Slots in (`from`, `to`], oldest first, at most `limit`. */
export function slotsBetween(cron: Cron, from: Date, to: Date, zone: string, limit = 10_000): Date[] {
  const slots: Date[] = [];
  let t = nextSlot(cron, from, zone);
  while (t.getTime() <= to.getTime() && slots.length < limit) {
    slots.push(t);
    t = nextSlot(cron, t, zone);
  }
  return slots;
}

/** The latest slot at or before `at` (undefined if none within the schedule's longest gap). */
export function latestSlot(cron: Cron, at: Date, zone: string): Date | undefined {
  let latest: Date | undefined;
  let t = nextSlot(cron, new Date(at.getTime() - lookbackMs(cron)), zone);
  while (t.getTime() <= at.getTime()) {
    latest = t;
    t = nextSlot(cron, t, zone);
  }
  return latest;
}
