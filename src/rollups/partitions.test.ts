import { describe, expect, it } from 'vitest';
import { nextPartitionBounds, partitionName } from './partition-bounds.ts';

const at = (iso: string): Date => new Date(iso);

describe('partitions ahead', () => {
  it('continue the newest partition’s width: a day, a week, a calendar month, any fixed width', () => {
    expect(nextPartitionBounds({ from: at('2026-12-01T00:00:00Z'), to: at('2026-12-02T00:00:00Z') })).toEqual(
      {
        from: at('2026-12-02T00:00:00Z'),
        to: at('2026-12-03T00:00:00Z'),
      },
    );
    expect(nextPartitionBounds({ from: at('2026-11-30T00:00:00Z'), to: at('2026-12-07T00:00:00Z') })).toEqual(
      {
        from: at('2026-12-07T00:00:00Z'),
        to: at('2026-12-14T00:00:00Z'),
      },
    );
    // February after January: 28 days, not January's 31.
    expect(nextPartitionBounds({ from: at('2027-01-01T00:00:00Z'), to: at('2027-02-01T00:00:00Z') })).toEqual(
      {
        from: at('2027-02-01T00:00:00Z'),
        to: at('2027-03-01T00:00:00Z'),
      },
    );
    expect(nextPartitionBounds({ from: at('2026-12-01T00:00:00Z'), to: at('2026-12-01T06:00:00Z') })).toEqual(
      {
        from: at('2026-12-01T06:00:00Z'),
        to: at('2026-12-01T12:00:00Z'),
      },
    );
  });

  it('are named by their UTC start, within PostgreSQL’s 63 bytes', () => {
    expect(partitionName('public.execution_logs', at('2026-12-02T00:00:00Z'))).toBe(
      'execution_logs_p20261202',
    );
    expect(partitionName('public.execution_logs', at('2026-12-01T06:00:00Z'))).toBe(
      'execution_logs_p20261201_0600',
    );
    const long = partitionName(`public.${'x'.repeat(70)}`, at('2026-12-02T00:00:00Z'));
    expect(long).toHaveLength(63);
    expect(long.endsWith('_p20261202')).toBe(true);
  });
});
