import type { Pool } from '../../src/db/index.ts';
import { runHistory } from '../../src/runtime/index.ts';
import { runHealthChecks, type HealthReport } from '../../src/tasks/index.ts';

type HealthOptions = Parameters<typeof runHealthChecks>[0];

/**
 * runHealthChecks as an eager run calls it on `pool`: no broker, no expected schedules, no rollup
 * freshness, in UTC unless `options` says otherwise; `options` adds the checks a test is about
 * (definitions for rollup_identity, partitions).
 */
export async function healthReport(pool: Pool, options: Partial<HealthOptions> = {}): Promise<HealthReport> {
  return await runHealthChecks({
    pool,
    settings: { analyticsTimezone: 'UTC' },
    broker: undefined,
    runs: runHistory(pool),
    expected: [],
    rollups: [],
    ...options,
  });
}
