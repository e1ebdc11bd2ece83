import { describe, expect, it } from 'vitest';
import { bucketEndSql, bucketStartSql, checkGrain } from './grain.ts';

describe('grain SQL', () => {
  it('truncates calendar grains in the zone', () => {
    expect(bucketStartSql('day', 't', '$1')).toBe("date_trunc('day', t, $1)");
    expect(bucketStartSql('week', 't', '$1')).toBe("date_trunc('week', t, $1)");
  });
  it('bins fixed grains from a Monday midnight UTC', () => {
    expect(bucketStartSql({ minutes: 15 }, 't', '$1')).toBe(
      "date_bin(interval '15 minutes', t, timestamptz '2000-01-03 00:00:00+00')",
    );
  });
  it('adds calendar units in local time, so DST days are 23 or 25 hours', () => {
    expect(bucketEndSql('month', 's', '$1')).toBe(
      "date_trunc('month', (s AT TIME ZONE $1 + interval '1 month') AT TIME ZONE $1, $1)",
    );
    expect(bucketEndSql('hour', 's', '$1')).toBe("(s + interval '1 hour')");
  });
  it('accepts widths that divide a day and rejects others', () => {
    expect(() => checkGrain({ minutes: 15 })).not.toThrow();
    expect(() => checkGrain({ minutes: 7 })).toThrow(/divides 1440, got 7/);
    expect(() => checkGrain({ minutes: 0 })).toThrow();
  });
});
