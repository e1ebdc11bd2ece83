/**
 * The bounds and names of time partitions (src/rollups/partitions.ts), all in UTC: the next
 * partition of a table's layout, the first ones `SOURCE_PARTITIONS` creates, their names.
 */

const DAY_MS = 86_400_000;

/** The start of the day (UTC midnight) or ISO week (Monday, UTC) that holds `t`. */
export function partitionStart(t: Date, width: 'day' | 'week'): Date {
  const midnight = Math.floor(t.getTime() / DAY_MS) * DAY_MS;
  if (width === 'day') return new Date(midnight);
  const mondayOffset = (new Date(midnight).getUTCDay() + 6) % 7;
  return new Date(midnight - mondayOffset * DAY_MS);
}

/** [from, to) of each first partition: from the one holding `oldest` to the one after `now`'s. */
export function firstPartitionBounds(
  width: 'day' | 'week',
  oldest: Date,
  now: Date,
): Array<{ from: Date; to: Date }> {
  const step = (width === 'day' ? 1 : 7) * DAY_MS;
  const bounds: Array<{ from: Date; to: Date }> = [];
  const last = partitionStart(now, width).getTime() + step;
  for (let from = partitionStart(oldest, width).getTime(); from <= last; from += step)
    bounds.push({ from: new Date(from), to: new Date(from + step) });
  return bounds;
}

function addUtcMonths(t: Date, months: number): Date {
  const d = new Date(t);
  d.setUTCMonth(d.getUTCMonth() + months);
  return d;
}

/** The next partition after `last`, of the same width (calendar months stay months). */
export function nextPartitionBounds(last: { from: Date; to: Date }): { from: Date; to: Date } {
  const from = last.to;
  const monthly = addUtcMonths(last.from, 1).getTime() === last.to.getTime() && last.from.getUTCDate() === 1;
  return {
    from,
    to: monthly
      ? addUtcMonths(from, 1)
      : new Date(from.getTime() + (last.to.getTime() - last.from.getTime())),
  };
}

/** `<table>_p<yyyymmdd>` (and `_<hhmm>` for a partition that does not start at a UTC midnight). */
export function partitionName(table: string, from: Date): string {
  const bare = table.split('.')[1] ?? table;
  const iso = from.toISOString();
  const day = iso.slice(0, 10).replaceAll('-', '');
  const time = iso.slice(11, 16).replace(':', '');
  const suffix = `_p${day}${time === '0000' ? '' : `_${time}`}`;
  // PostgreSQL cuts names at 63 bytes: the table's part is shortened, never the date.
  return `${bare.slice(0, 63 - suffix.length)}${suffix}`;
}

/** `<table>_older`: the MINVALUE partition below the oldest day or week kept. */
export function olderRowsPartitionName(table: string): string {
  const bare = table.split('.')[1] ?? table;
  return `${bare.slice(0, 63 - '_older'.length)}_older`;
}
