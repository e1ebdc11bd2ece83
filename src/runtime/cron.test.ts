import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { latestSlot, nextSlot, parseCron, slotsBetween } from './cron.ts';

const iso = (d: Date | undefined): string | undefined => d?.toISOString();
const at = (s: string): Date => new Date(s);

describe('parseCron', () => {
  it('reads the seed schedules', () => {
    expect(
      slotsBetween(
        parseCron('*/15 * * * *'),
        at('2025-01-09T10:00:00Z'),
        at('2025-01-09T11:00:00Z'),
        'UTC',
      ).map(iso),
    ).toEqual([
      '2025-01-09T10:15:00.000Z',
      '2025-01-09T10:30:00.000Z',
      '2025-01-09T10:45:00.000Z',
      '2025-01-09T11:00:00.000Z',
    ]);
  });

  it('rejects malformed expressions, naming the field and the rule', () => {
    expect(() => parseCron('61 * * * *')).toThrow(/minute field "61".*expected range 0-59/);
    expect(() => parseCron('* 24 * * *')).toThrow(/hour field "24".*expected range 0-23/);
    expect(() => parseCron('* * * * 8')).toThrow(/day-of-week field "8".*expected range 0-7/);
    expect(() => parseCron('* * *')).toThrow(/5 fields/);
    expect(() => parseCron('0 0 0 * * *')).toThrow(/5 fields/);
    expect(() => parseCron('x * * * *')).toThrow(/minute field "x"/);
  });
});

describe('nextSlot in UTC', () => {
  it('hourly at :05', () => {
    expect(iso(nextSlot(parseCron('5 * * * *'), at('2025-01-09T14:05:00Z'), 'UTC'))).toBe(
      '2025-01-09T15:05:00.000Z',
    );
    expect(iso(nextSlot(parseCron('5 * * * *'), at('2025-01-09T14:04:59Z'), 'UTC'))).toBe(
      '2025-01-09T14:05:00.000Z',
    );
  });
  it('weekly Monday 02:00 and monthly 1st 04:00', () => {
    // 2025-01-09 is a Thursday.
    expect(iso(nextSlot(parseCron('0 2 * * 1'), at('2025-01-09T00:00:00Z'), 'UTC'))).toBe(
      '2025-01-13T02:00:00.000Z',
    );
    expect(iso(nextSlot(parseCron('0 4 1 * *'), at('2025-01-09T00:00:00Z'), 'UTC'))).toBe(
      '2025-02-01T04:00:00.000Z',
    );
    expect(iso(nextSlot(parseCron('0 4 1 * *'), at('2025-12-01T04:00:00Z'), 'UTC'))).toBe(
      '2026-01-01T04:00:00.000Z',
    );
  });
});

describe('nextSlot across DST (Europe/Berlin: 2025-03-30 02:00 → 03:00, 2025-10-26 03:00 → 02:00)', () => {
  const zone = 'Europe/Berlin';
  it('a fixed time in the spring gap fires once, shifted forward by the gap (02:30 → 03:30 CEST)', () => {
    // Decided in docs/design.md ("Decisions"): RFC 5545's and Temporal's reading of a time that
    // does not exist, as cron-parser does; vixie cron would fire at 03:00.
    const cron = parseCron('30 2 * * *');
    const first = nextSlot(cron, at('2025-03-29T12:00:00Z'), zone);
    expect(iso(first)).toBe('2025-03-30T01:30:00.000Z');
    expect(iso(nextSlot(cron, first, zone))).toBe('2025-03-31T00:30:00.000Z');
  });
  it('a fixed time in the autumn overlap fires once, at its first occurrence', () => {
    const cron = parseCron('30 2 * * *');
    const first = nextSlot(cron, at('2025-10-25T12:00:00Z'), zone);
    expect(iso(first)).toBe('2025-10-26T00:30:00.000Z');
    expect(iso(nextSlot(cron, first, zone))).toBe('2025-10-27T01:30:00.000Z');
  });
  it('hourly fires in both repeated hours and never in the skipped one', () => {
    const autumn = slotsBetween(
      parseCron('5 * * * *'),
      at('2025-10-25T23:00:00Z'),
      at('2025-10-26T03:00:00Z'),
      zone,
    );
    expect(autumn.map((d) => d.toISOString())).toEqual([
      '2025-10-25T23:05:00.000Z',
      '2025-10-26T00:05:00.000Z',
      '2025-10-26T01:05:00.000Z',
      '2025-10-26T02:05:00.000Z',
    ]);
    const spring = slotsBetween(
      parseCron('5 * * * *'),
      at('2025-03-30T00:00:00Z'),
      at('2025-03-30T02:00:00Z'),
      zone,
    );
    expect(spring).toHaveLength(2); // 01:05 CET and 03:05 CEST: one an hour of real time
  });
  it('daily at 01:00 in a zone whose clocks jump at 01:00 (Europe/London, 2025-03-30)', () => {
    expect(iso(nextSlot(parseCron('0 1 * * *'), at('2025-03-29T12:00:00Z'), 'Europe/London'))).toBe(
      '2025-03-30T01:00:00.000Z',
    );
  });
  it('half-hour zones: hourly at :05 local', () => {
    expect(iso(nextSlot(parseCron('5 * * * *'), at('2025-01-09T00:00:00Z'), 'Asia/Kolkata'))).toBe(
      '2025-01-09T00:35:00.000Z',
    );
  });
});

describe('where cron-parser gives up (loop limit) in a 30-minute DST zone', () => {
  it('monthly in Australia/Lord_Howe across its April 2029 change: every 1st at 04:00 local', () => {
    // 04:00 at +11 until 1 April 2029 (the clocks go back 30 minutes at 02:00 that day), +10:30 after.
    const cron = parseCron('0 4 1 * *');
    const zone = 'Australia/Lord_Howe';
    expect(slotsBetween(cron, at('2029-01-15T00:00:00Z'), at('2029-05-15T00:00:00Z'), zone).map(iso)).toEqual(
      [
        '2029-01-31T17:00:00.000Z',
        '2029-02-28T17:00:00.000Z',
        '2029-03-31T17:30:00.000Z',
        '2029-04-30T17:30:00.000Z',
      ],
    );
    expect(iso(latestSlot(cron, at('2029-03-31T17:29:59Z'), zone))).toBe('2029-02-28T17:00:00.000Z');
  });
});

describe('latestSlot', () => {
  it('is the last slot at or before the time', () => {
    expect(iso(latestSlot(parseCron('0 1 * * *'), at('2025-01-09T00:59:00Z'), 'UTC'))).toBe(
      '2025-01-08T01:00:00.000Z',
    );
    expect(iso(latestSlot(parseCron('0 1 * * *'), at('2025-01-09T01:00:00Z'), 'UTC'))).toBe(
      '2025-01-09T01:00:00.000Z',
    );
    expect(iso(latestSlot(parseCron('0 4 1 * *'), at('2025-03-15T00:00:00Z'), 'UTC'))).toBe(
      '2025-03-01T04:00:00.000Z',
    );
  });
});

describe('properties', () => {
  const zones = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata'];
  const crons = ['5 * * * *', '*/15 * * * *', '0 1 * * *', '0 2 * * 1', '0 4 1 * *', '0 3 * * *'];
  it('next is after, strictly increasing, and latest(next) = next', () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date('2020-01-01'), max: new Date('2030-01-01'), noInvalidDate: true }),
        fc.constantFrom(...zones),
        fc.constantFrom(...crons),
        (t, zone, source) => {
          const cron = parseCron(source);
          const n1 = nextSlot(cron, t, zone);
          const n2 = nextSlot(cron, n1, zone);
          expect(n1.getTime()).toBeGreaterThan(t.getTime());
          expect(n2.getTime()).toBeGreaterThan(n1.getTime());
          expect(latestSlot(cron, n1, zone)?.getTime()).toBe(n1.getTime());
          expect(latestSlot(cron, new Date(n1.getTime() - 1), zone)?.getTime() ?? 0).toBeLessThan(
            n1.getTime(),
          );
        },
      ),
      { numRuns: 200 },
    );
  });
});
