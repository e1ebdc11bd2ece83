/**
 * Backfill windows and task arguments cut time with src/tasks/time-window.ts's bucketOf (in
 * JavaScript: it runs where no database is asked, at argument validation); the engine buckets rows
 * with the SQL of src/rollups/grain.ts. They must give the same buckets, or a window would split a
 * bucket the engine counts whole: bucketOf's bucket is the range of source rows the engine reads for
 * a group (bucketRowsStartSql of its label and of the next). Asked of PostgreSQL here for every grain, in zones with DST
 * changes at 02:00, at midnight, of 30 minutes, and none, over a year and densely around each change.
 * It found the engine's bucket end an hour late after a skipped midnight (America/Santiago,
 * 2025-09-07: 01:00 + 1 day lies in the next day's bucket), fixed in grain.ts.
 */
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { bucketEndSql, bucketRowsStartSql, bucketStartSql } from '../../src/rollups/grain.ts';
import { bucketOf, type TaskGrain } from '../../src/tasks/time-window.ts';
import { createTestDatabase } from '../support/database.ts';

const db = await createTestDatabase();
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const zones = [
  'UTC',
  'Europe/Berlin',
  'America/New_York',
  'America/Santiago', // changes at midnight
  // The clocks go back from 01:00 to midnight: date_trunc labels the day with the second midnight
  // (2025-11-02T05:00Z), its rows begin at the first (04:00Z), where bucketOf starts it.
  'America/Havana',
  'Atlantic/Azores', // the same, each October
  'Australia/Lord_Howe', // a 30-minute change
  'Asia/Kolkata',
  'Pacific/Chatham',
];
const grains: TaskGrain[] = ['hour', 'day', 'week', 'month'];

/** Every 97 minutes through 2025, and every 10 minutes for two days either side of each change. */
function instants(zone: string): number[] {
  const start = Date.UTC(2025, 0, 1);
  const end = Date.UTC(2026, 0, 1);
  const out: number[] = [];
  for (let t = start; t < end; t += 97 * MIN) out.push(t);
  let offset = DateTime.fromMillis(start, { zone }).offset;
  for (let t = start; t < end; t += HOUR) {
    const now = DateTime.fromMillis(t, { zone }).offset;
    if (now === offset) continue;
    for (let u = t - 2 * DAY; u < t + 2 * DAY; u += 10 * MIN) out.push(u);
    offset = now;
  }
  return out;
}

describe('buckets in JavaScript and in the engine', () => {
  it.each(zones)(
    'agree in %s for every grain',
    async (zone) => {
      const times = instants(zone);
      for (const grain of grains) {
        const start = bucketStartSql(grain, 'u.t', '$2::text');
        const { rows } = await db.pool.query<{ s: Date; e: Date }>(
          `SELECT ${bucketRowsStartSql(grain, start, '$2::text')} AS s,
                ${bucketRowsStartSql(grain, bucketEndSql(grain, start, '$2::text'), '$2::text')} AS e
         FROM unnest($1::timestamptz[]) WITH ORDINALITY AS u(t, i) ORDER BY u.i`,
          [times.map((t) => new Date(t)), zone],
        );
        const differ = times.flatMap((t, i) => {
          const js = bucketOf(grain, new Date(t), zone);
          const pg = rows[i];
          return js.start.getTime() === pg?.s.getTime() && js.end.getTime() === pg.e.getTime()
            ? []
            : [
                `${new Date(t).toISOString()}: js ${js.start.toISOString()}–${js.end.toISOString()}, ` +
                  `pg ${pg?.s.toISOString()}–${pg?.e.toISOString()}`,
              ];
        });
        expect(differ.slice(0, 5), `${grain} in ${zone}: ${differ.length} of ${times.length} differ`).toEqual(
          [],
        );
      }
    },
    180_000,
  ); // a year of instants in four grains: ~15 s at a load of 8
});
