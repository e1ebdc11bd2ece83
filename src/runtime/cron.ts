import { CronExpressionParser, type CronExpression } from 'cron-parser';

/**
 * Five-field cron expressions (minute hour day-of-month month day-of-week) evaluated in an IANA
 * time zone by cron-parser, DST included:
 *
 * - When the clocks go back, a wall-clock time that happens twice (`30 2 * * *`) fires once, at its
 *   first occurrence; a schedule with any hour (`5 * * * *`) fires in both repeated hours.
 * - When the clocks jump forward, a wall-clock time in the skipped hour (`30 2 * * *` on the night
 *   Berlin goes from 02:00 to 03:00) fires once, shifted forward by the length of the gap (03:30),
 *   as RFC 5545 and JavaScript's Temporal ("compatible") read a time that does not exist; a
 *   schedule with any hour does not fire in the skipped hour.
 *
 * docs/design.md ("Decisions") says why.
 */
export interface Cron {
  readonly source: string;
}

export class CronSyntaxError extends Error {
  override readonly name = 'CronSyntaxError';
}

const fieldNames = ['minute', 'hour', 'day-of-month', 'month', 'day-of-week'] as const;

/** Checks `source` (each field on its own, so that an error names its field). */
export function parseCron(source: string): Cron {
  const fields = source.trim().split(/\s+/);
  if (fields.length !== 5) throw new CronSyntaxError(`a cron expression has 5 fields, got "${source}"`);
  fields.forEach((field, i) => {
    try {
      CronExpressionParser.parse(fields.map((f, j) => (j === i ? f : '*')).join(' '), { strict: false });
    } catch (error) {
      throw new CronSyntaxError(
        `cron ${fieldNames[i] ?? '?'} field "${field}" of "${source}": ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
  });
  return { source };
}

function expression(cron: Cron, at: Date, zone: string): CronExpression {
  return CronExpressionParser.parse(cron.source, { currentDate: at, tz: zone });
}

const DAY = 86_400_000;

/**
 * cron-parser 5.10.3 gives up ("loop limit exceeded") on some searches in a zone whose clocks move
 * by 30 minutes (Australia/Lord_Howe: `0 4 1 * *` from early March 2029). When it does, the search
 * goes on a day at a time, each day's slots listed from its end in the other direction (the
 * search that gave up costs about half a second; the day steps about a millisecond each).
 */
function isLoopLimit(error: unknown): boolean {
  return error instanceof Error && /loop limit exceeded/.test(error.message);
}

/** The first slot strictly after `after`. */
export function nextSlot(cron: Cron, after: Date, zone: string): Date {
  try {
    return expression(cron, after, zone).next().toDate();
  } catch (error) {
    if (!isLoopLimit(error)) throw error;
  }
  // A day at a time: the slots in (from, from + 1 day], listed back from the day's end.
  for (let from = after, day = 0; day <= 4 * 366; day += 1) {
    const end = new Date(from.getTime() + DAY);
    const back = expression(cron, new Date(end.getTime() + 1), zone);
    let earliest: Date | undefined;
    for (let t = back.prev().toDate(); t.getTime() > from.getTime(); t = back.prev().toDate()) earliest = t;
    if (earliest !== undefined) return earliest;
    from = end;
  }
  throw new Error(`cron "${cron.source}" has no slot after ${after.toISOString()} in ${zone}`);
}

/** Slots in (`from`, `to`], oldest first, at most `limit`. */
export function slotsBetween(cron: Cron, from: Date, to: Date, zone: string, limit = 10_000): Date[] {
  const slots: Date[] = [];
  for (let t = nextSlot(cron, from, zone); t.getTime() <= to.getTime() && slots.length < limit;) {
    slots.push(t);
    t = nextSlot(cron, t, zone);
  }
  return slots;
}

/** The latest slot at or before `at`. */
export function latestSlot(cron: Cron, at: Date, zone: string): Date | undefined {
  // prev() is strictly before its start: start one millisecond after `at`.
  try {
    return expression(cron, new Date(at.getTime() + 1), zone)
      .prev()
      .toDate();
  } catch (error) {
    if (!isLoopLimit(error)) throw error;
  }
  // A day at a time: the slots in [to - 1 day, to), listed on from the day's start.
  for (let to = new Date(at.getTime() + 1), day = 0; day <= 4 * 366; day += 1) {
    const start = new Date(to.getTime() - DAY);
    const ahead = expression(cron, new Date(start.getTime() - 1), zone);
    let latest: Date | undefined;
    for (let t = ahead.next().toDate(); t.getTime() < to.getTime(); t = ahead.next().toDate()) latest = t;
    if (latest !== undefined) return latest;
    to = start;
  }
  return undefined;
}
