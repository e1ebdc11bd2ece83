import { describe, expect, it } from 'vitest';
import { parseSettings } from '../config/index.ts';
import { builtinTaskSet } from '../tasks/index.ts';
import { nextRunTimes, slotRunId } from './schedules.ts';

describe('schedules', () => {
  it('name a slot’s run by task and UTC time, without the colons BullMQ refuses', () => {
    expect(slotRunId('hourly_rollup', new Date('2025-01-09T14:05:00Z'))).toBe(
      'hourly_rollup@20250109T140500Z',
    );
  });

  it('give the next run of each enabled schedule in ANALYTICS_TIMEZONE', () => {
    const settings = parseSettings({
      ANALYTICS_TIMEZONE: 'America/New_York',
      WEEKLY_ROLLUP_ENABLED: 'false',
    });
    const next = Object.fromEntries(
      nextRunTimes(builtinTaskSet(), settings, new Date('2025-01-09T14:07:00Z')).map((n) => [
        n.task,
        n.nextRunAt?.toISOString(),
      ]),
    );
    expect(next).toEqual({
      hourly_rollup: '2025-01-09T15:05:00.000Z',
      daily_rollup: '2025-01-10T06:00:00.000Z', // 01:00 EST
      weekly_rollup: undefined,
      monthly_rollup: '2025-02-01T09:00:00.000Z',
      refresh_materialized_views: '2025-01-09T14:15:00.000Z',
      cleanup_old_data: '2025-01-10T08:00:00.000Z',
      health_check: '2025-01-09T14:10:00.000Z',
    });
  });
});
