import { describe, expect, it } from 'vitest';
import { bucketOf, bucketsPerBackfillWindow, parseIsoInZone, splitIntoWindows } from './time-window.ts';

const iso = (d: Date | undefined): string | undefined => d?.toISOString();

describe('parseIsoInZone', () => {
  it('reads a wall time in the zone unless an offset is given', () => {
    expect(iso(parseIsoInZone('2025-01-09T14:00:00', 'Europe/Berlin'))).toBe('2025-01-09T13:00:00.000Z');
    expect(iso(parseIsoInZone('2025-01-09T14:00:00Z', 'Europe/Berlin'))).toBe('2025-01-09T14:00:00.000Z');
    expect(iso(parseIsoInZone('2025-01-09T14:00:00+05:30', 'UTC'))).toBe('2025-01-09T08:30:00.000Z');
    expect(iso(parseIsoInZone('2025-01-09', 'America/New_York'))).toBe('2025-01-09T05:00:00.000Z');
    // Berlin's clocks skip 02:00–03:00 on 2025-03-30 and show 02:00–03:00 twice on 2025-10-26: a
    // skipped time is shifted forward by the gap, a repeated one is its first occurrence (as cron.ts).
    expect(iso(parseIsoInZone('2025-03-30T02:30:00', 'Europe/Berlin'))).toBe('2025-03-30T01:30:00.000Z');
    expect(iso(parseIsoInZone('2025-10-26T02:30:00', 'Europe/Berlin'))).toBe('2025-10-26T00:30:00.000Z');
    expect(iso(parseIsoInZone('2025-10-26T03:30:00', 'Europe/Berlin'))).toBe('2025-10-26T02:30:00.000Z');
    // Lord Howe moves by 30 minutes: 01:45 happens twice on 2025-04-06.
    expect(iso(parseIsoInZone('2025-04-06T01:45:00', 'Australia/Lord_Howe'))).toBe(
      '2025-04-05T14:45:00.000Z',
    );
  });
  it('rejects what is not a date', () => {
    for (const bad of ['', 'abc', '2025-13-01', '2025-02-29', '2025-01-09T25:00', '2025/01/09']) {
      expect(parseIsoInZone(bad, 'UTC'), bad).toBeUndefined();
    }
  });
});

describe('bucketOf', () => {
  it('matches the engine: Monday weeks, calendar months, DST days in the zone', () => {
    const zone = 'Europe/Berlin';
    const t = new Date('2025-03-30T12:00:00Z'); // the 23-hour day
    const day = bucketOf('day', t, zone);
    expect([iso(day.start), iso(day.end)]).toEqual(['2025-03-29T23:00:00.000Z', '2025-03-30T22:00:00.000Z']);
    const week = bucketOf('week', t, zone); // Sunday: its week began Monday the 24th
    expect(iso(week.start)).toBe('2025-03-23T23:00:00.000Z');
    const month = bucketOf('month', new Date('2025-12-15T00:00:00Z'), zone);
    expect([iso(month.start), iso(month.end)]).toEqual([
      '2025-11-30T23:00:00.000Z',
      '2025-12-31T23:00:00.000Z',
    ]);
    const hour = bucketOf('hour', new Date('2025-01-09T14:35:12.345Z'), 'Asia/Kolkata');
    expect(iso(hour.start)).toBe('2025-01-09T14:30:00.000Z');
  });
});

describe('splitIntoWindows', () => {
  it('covers the range with whole buckets, one day of hours per window', () => {
    const windows = splitIntoWindows(
      'hour',
      { start: new Date('2025-01-01T10:30:00Z'), end: new Date('2025-01-03T00:00:00Z') },
      'UTC',
      24,
      100,
    );
    expect(windows.map((w) => [iso(w.start), iso(w.end)])).toEqual([
      ['2025-01-01T10:00:00.000Z', '2025-01-02T10:00:00.000Z'],
      ['2025-01-02T10:00:00.000Z', '2025-01-03T00:00:00.000Z'],
    ]);
  });

  it('holds BACKFILL_WINDOW_DAYS of source time per window, rounded up to whole buckets (unset: the defaults)', () => {
    expect(['hour', 'day', 'week', 'month'].map((g) => bucketsPerBackfillWindow(g as 'hour', 7))).toEqual([
      168, 7, 1, 1,
    ]);
    expect(
      ['hour', 'day', 'week', 'month'].map((g) => bucketsPerBackfillWindow(g as 'hour', undefined)),
    ).toEqual([24, 7, 4, 1]);
    expect(bucketsPerBackfillWindow('week', 8)).toBe(2);
    expect(bucketsPerBackfillWindow('month', 62)).toBe(2);
    const windows = splitIntoWindows(
      'day',
      { start: new Date('2025-03-01T00:00:00Z'), end: new Date('2025-03-31T00:00:00Z') },
      'Europe/Berlin',
      bucketsPerBackfillWindow('day', 7),
      100,
    );
    expect(windows.map((w) => [iso(w.start), iso(w.end)])).toEqual([
      ['2025-02-28T23:00:00.000Z', '2025-03-07T23:00:00.000Z'],
      ['2025-03-07T23:00:00.000Z', '2025-03-14T23:00:00.000Z'],
      ['2025-03-14T23:00:00.000Z', '2025-03-21T23:00:00.000Z'],
      ['2025-03-21T23:00:00.000Z', '2025-03-28T23:00:00.000Z'],
      ['2025-03-28T23:00:00.000Z', '2025-03-31T22:00:00.000Z'],
    ]);
  });
});
