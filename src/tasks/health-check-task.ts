import { builtinRollups } from '../rollups/index.ts';
import { runHealthChecks, type HealthReport } from './health-check.ts';
import { cleanupOldDataTask, refreshMaterializedViewsTask } from './maintenance-tasks.ts';
import { dailyRollupTask, hourlyRollupTask, monthlyRollupTask, weeklyRollupTask } from './rollup-tasks.ts';
import { noArgs } from './task-args.ts';
import type { AnyTaskDefinition, TaskDefinition } from './task-definition.ts';

const rollupTasks = [
  ['hour', hourlyRollupTask],
  ['day', dailyRollupTask],
  ['week', weeklyRollupTask],
  ['month', monthlyRollupTask],
] as const;

export const healthCheckTask: TaskDefinition<Record<string, never>, Record<string, never>, HealthReport> = {
  name: 'health_check',
  queue: 'maintenance',
  description:
    'database, broker, recent activity, freshness, backlog, failures, change-capture lag, anomalies, rollup identity, partitions ahead',
  positional: [],
  schema: noArgs,
  hardLimitSeconds: 300,
  schedule: { cron: '*/5 * * * *', periodSeconds: 300, enabled: () => true },
  async run(ctx) {
    const scheduled: AnyTaskDefinition[] = [
      ...rollupTasks.map(([, t]) => t as AnyTaskDefinition),
      refreshMaterializedViewsTask as AnyTaskDefinition,
      cleanupOldDataTask as AnyTaskDefinition,
    ];
    const enabledGrains = new Set<string>(
      rollupTasks.filter(([, t]) => t.schedule?.enabled(ctx.settings) === true).map(([g]) => g),
    );
    return await runHealthChecks({
      pool: ctx.pool,
      settings: ctx.settings,
      broker: ctx.broker,
      runs: ctx.runs,
      expected: scheduled
        .filter((t) => t.schedule?.enabled(ctx.settings) === true)
        .map((t) => ({ task: t.name, periodSeconds: t.schedule?.periodSeconds ?? 3600 })),
      definitions: builtinRollups,
      partitions: {
        tables: [...new Set(builtinRollups.map((r) => r.source))],
        leadDays: ctx.settings.partitionLeadDays,
      },
      rollups: builtinRollups
        .filter((r) => typeof r.grain === 'string' && enabledGrains.has(r.grain))
        .map((r) => ({ name: r.name, grain: String(r.grain) })),
    });
  },
};
