import { describe, expect, it } from 'vitest';
import { parseSettings } from '../config/index.ts';
import { taskRegistry, timeLimitsOf } from './task-registry.ts';

describe('time limits', () => {
  const settings = parseSettings({});
  it('are the seed’s per task, soft at 11/12 of hard', () => {
    expect(timeLimitsOf(taskRegistry.hourly_rollup, settings)).toEqual({
      hardSeconds: 3600,
      softSeconds: 3300,
    });
    expect(timeLimitsOf(taskRegistry.daily_rollup, settings).hardSeconds).toBe(7200);
    expect(timeLimitsOf(taskRegistry.weekly_rollup, settings).hardSeconds).toBe(14_400);
    expect(timeLimitsOf(taskRegistry.monthly_rollup, settings).hardSeconds).toBe(14_400);
    expect(timeLimitsOf(taskRegistry.refresh_materialized_views, settings).hardSeconds).toBe(900);
    expect(timeLimitsOf(taskRegistry.cleanup_old_data, settings).hardSeconds).toBe(7200);
    expect(timeLimitsOf(taskRegistry.health_check, settings)).toEqual({ hardSeconds: 300, softSeconds: 275 });
  });
  it('default to TASK_SOFT_TIME_LIMIT / TASK_HARD_TIME_LIMIT and are overridden by TASK_TIME_LIMITS', () => {
    const custom = parseSettings({
      TASK_SOFT_TIME_LIMIT: '100',
      TASK_HARD_TIME_LIMIT: '200',
      TASK_TIME_LIMITS: 'health_check=60:50,hourly_rollup=120',
    });
    expect(timeLimitsOf({ name: 'other' }, custom)).toEqual({ hardSeconds: 200, softSeconds: 100 });
    expect(timeLimitsOf(taskRegistry.health_check, custom)).toEqual({ hardSeconds: 60, softSeconds: 50 });
    expect(timeLimitsOf(taskRegistry.hourly_rollup, custom)).toEqual({ hardSeconds: 120, softSeconds: 110 });
  });
  it('reject malformed overrides, naming the variable', () => {
    expect(() => parseSettings({ TASK_TIME_LIMITS: 'health_check=10:20' })).toThrow(
      /TASK_TIME_LIMITS must be/,
    );
    expect(() => parseSettings({ TASK_SOFT_TIME_LIMIT: '4000' })).toThrow(
      /TASK_SOFT_TIME_LIMIT must be at most TASK_HARD_TIME_LIMIT \(3600\), got "4000"/,
    );
    expect(() => parseSettings({ BEAT_CATCHUP: 'sometimes' })).toThrow(
      /BEAT_CATCHUP must be one of once, all, none/,
    );
  });
  it('every scheduled task has the seed’s cron', () => {
    expect(Object.fromEntries(Object.values(taskRegistry).map((t) => [t.name, t.schedule?.cron]))).toEqual({
      hourly_rollup: '5 * * * *',
      daily_rollup: '0 1 * * *',
      weekly_rollup: '0 2 * * 1',
      monthly_rollup: '0 4 1 * *',
      refresh_materialized_views: '*/15 * * * *',
      cleanup_old_data: '0 3 * * *',
      health_check: '*/5 * * * *',
      backfill_aggregations: undefined,
      backfill_window: undefined,
    });
  });
});
