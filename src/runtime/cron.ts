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

/** The first slot strictly after `after`. */
export function nextSlot(cron: Cron, after: Date, zone: string): Date {
  return expression(cron, after, zone).next().toDate();
}

/** Slots in (`from`, `to`], oldest first, at most `limit`. */
export function slotsBetween(cron: Cron, from: Date, to: Date, zone: string, limit = 10_000): Date[] {
  const slots: Date[] = [];
  const it = expression(cron, from, zone);
  for (
    let t = it.next().toDate();
    t.getTime() <= to.getTime() && slots.length < limit;
    t = it.next().toDate()
  ) {
    slots.push(t);
  }
  return slots;
}

/** The latest slot at or before `at`. */
export function latestSlot(cron: Cron, at: Date, zone: string): Date | undefined {
  // prev() is strictly before its start: start one millisecond after `at`.
  return expression(cron, new Date(at.getTime() + 1), zone)
    .prev()
    .toDate();
}
