import type { Grain } from './definition.ts';

/**
 * SQL for the start of the bucket holding `time` (a timestamptz expression), in time zone `zone`
 * (an SQL expression, usually a parameter). Days, weeks (Monday) and months follow the zone's
 * calendar, so a 23-hour or 25-hour day is one bucket. Fixed widths count from a Monday midnight UTC.
 */
export function bucketStartSql(grain: Grain, time: string, zone: string): string {
  if (typeof grain === 'object') {
    return `date_bin(interval '${grain.minutes} minutes', ${time}, timestamptz '2000-01-03 00:00:00+00')`;
  }
  return `date_trunc('${grain}', ${time}, ${zone})`;
}

/** SQL for the end of the bucket that starts at `start` (exclusive), DST-correct. */
export function bucketEndSql(grain: Grain, start: string, zone: string): string {
  if (typeof grain === 'object') return `(${start} + interval '${grain.minutes} minutes')`;
  if (grain === 'hour') return `(${start} + interval '1 hour')`;
  // Add calendar units in local time, then convert back: 1 day after a spring-forward midnight is 23 h.
  // Truncated again: a day that starts after a skipped midnight (America/Santiago) starts at 01:00,
  // and 01:00 the next day lies an hour into the next bucket.
  return `date_trunc('${grain}', (${start} AT TIME ZONE ${zone} + interval '1 ${grain}') AT TIME ZONE ${zone}, ${zone})`;
}

/**
 * SQL for the first instant whose bucket is the one labelled `start` (a bucket start from
 * bucketStartSql or bucketEndSql). It is `start` itself, except where the clocks go back to a
 * midnight (America/Havana, Atlantic/Azores: 01:00 becomes 00:00 again): date_trunc labels that day
 * with the second midnight, and its rows begin at the first. Ranges of source rows are cut here, so
 * that a group is recomputed from exactly the rows the plain GROUP BY puts in it. The shifts tried
 * (2 h, 1 h, 30 min) cover every zone's; date_trunc never goes back, so the widest that still lands
 * in the bucket is its first instant.
 */
export function bucketRowsStartSql(grain: Grain, start: string, zone: string): string {
  if (typeof grain === 'object' || grain === 'hour') return start;
  const earlier = (shift: string): string =>
    `WHEN date_trunc('${grain}', ${start} - interval '${shift}', ${zone}) = ${start} THEN ${start} - interval '${shift}'`;
  return `(CASE ${earlier('2 hours')} ${earlier('1 hour')} ${earlier('30 minutes')} ELSE ${start} END)`;
}

/** Validates a fixed grain: whole minutes that divide a day evenly (so buckets never straddle midnight UTC oddly). */
export function checkGrain(grain: Grain): void {
  if (typeof grain === 'string') return;
  const { minutes } = grain;
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > 1440 || 1440 % minutes !== 0) {
    throw new Error(`grain.minutes must be a whole number of minutes that divides 1440, got ${minutes}`);
  }
}
