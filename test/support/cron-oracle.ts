/**
 * Cron slots found the slow way, apart from the code under test: walk every minute and ask
 * Intl.DateTimeFormat for its wall-clock fields in the zone. Knows the field forms the built-in
 * schedules use (`*`, `*\/n`, a number); anything else throws. Meant for spans of hours to weeks.
 */
const MINUTE = 60_000;
const fieldNames = ['minute', 'hour', 'day', 'month', 'weekday'] as const;
const weekdays: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

function fieldMatches(spec: string, value: number): boolean {
  if (spec === '*') return true;
  const step = /^\*\/(\d+)$/.exec(spec);
  if (step !== null) return value % Number(step[1]) === 0;
  if (/^\d+$/.test(spec)) return Number(spec) === value;
  throw new Error(`cron-oracle: field form ${spec} not supported`);
}

const formats = new Map<string, Intl.DateTimeFormat>();

function wallClock(instant: Date, zone: string): Record<(typeof fieldNames)[number], number> {
  let format = formats.get(zone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      minute: 'numeric',
      hour: 'numeric',
      day: 'numeric',
      month: 'numeric',
      weekday: 'short',
    });
    formats.set(zone, format);
  }
  const parts = format.formatToParts(instant);
  const get = (type: string): string => parts.find((p) => p.type === type)?.value ?? '';
  return {
    minute: Number(get('minute')),
    hour: Number(get('hour')),
    day: Number(get('day')),
    month: Number(get('month')),
    weekday: weekdays[get('weekday')] ?? -1,
  };
}

/** Whether the minute starting at `instant` (whole minute) is a slot of `cron` in `zone`. */
export function isSlot(cron: string, instant: Date, zone: string): boolean {
  const specs = cron.trim().split(/\s+/);
  if (specs.length !== 5) throw new Error(`cron-oracle: ${cron} is not five fields`);
  const wall = wallClock(instant, zone);
  return fieldNames.every((name, i) => fieldMatches(specs[i] ?? '', wall[name]));
}

function floorMinute(t: Date): number {
  return Math.floor(t.getTime() / MINUTE) * MINUTE;
}

/** Slots in (after, upTo], oldest first. */
export function slotsAfter(cron: string, after: Date, upTo: Date, zone: string): Date[] {
  const out: Date[] = [];
  for (let t = floorMinute(after) + MINUTE; t <= upTo.getTime(); t += MINUTE) {
    if (t > after.getTime() && isSlot(cron, new Date(t), zone)) out.push(new Date(t));
  }
  return out;
}

/** The latest slot at or before `t`, looking back at most `lookBackDays` (undefined if none). */
export function latestSlotAtOrBefore(
  cron: string,
  t: Date,
  zone: string,
  lookBackDays = 62,
): Date | undefined {
  const stop = t.getTime() - lookBackDays * 86_400_000;
  for (let m = floorMinute(t); m >= stop; m -= MINUTE) {
    if (isSlot(cron, new Date(m), zone)) return new Date(m);
  }
  return undefined;
}
