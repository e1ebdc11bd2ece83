import type { Pool } from '../../db/index.ts';
import { runHistory, type Runtime } from '../../runtime/index.ts';
import type { HealthReport, TaskContext } from '../../tasks/index.ts';

/** How long a health report is reused: the checks run several queries, and pages poll. */
const CACHE_MS = 5000;

/**
 * The health report the `health_check` task computes, run here in-process (no queue), so the
 * dashboard and the task can never disagree on what "healthy" means. Its queries go through `pool`
 * (the dashboard's, with its statement and lock timeouts).
 */
export function createHealthService(
  runtime: Runtime,
  pool: Pool = runtime.pool,
): { report(fresh?: boolean): Promise<HealthReport> } {
  let cached: { at: number; report: Promise<HealthReport> } | undefined;
  const compute = async (): Promise<HealthReport> => {
    const task = runtime.tasks.get('health_check');
    if (task === undefined) throw new Error('the health_check task is not registered');
    const ctx: TaskContext = {
      pool,
      settings: runtime.settings,
      logger: runtime.logger,
      signal: new AbortController().signal,
      runId: 'dashboard',
      attempt: 1,
      broker: runtime.broker,
      runs: runHistory(pool),
      now: () => runtime.now(),
    };
    return (await task.run(ctx, runtime.validate('health_check', {}))) as HealthReport;
  };
  return {
    report(fresh = false) {
      if (fresh || cached === undefined || Date.now() - cached.at > CACHE_MS) {
        const report = compute();
        cached = { at: Date.now(), report };
        report.catch(() => {
          cached = undefined;
        });
      }
      return cached.report;
    },
  };
}
