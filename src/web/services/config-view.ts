import { isSecretName } from '../../config/index.ts';
import { timeLimitsOf } from '../../tasks/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';

export interface ConfigView {
  settings: Array<{ name: string; value: unknown }>;
  tasks: Array<{
    name: string;
    queue: string;
    softSeconds: number;
    hardSeconds: number;
    schedule: string | null;
    scheduleEnabled: boolean | null;
  }>;
}

/**
 * Flower's configuration viewer: the settings this dashboard's process runs with, credentials
 * hidden (by name, and every password in a URL or known secret in any value, through the scrubber),
 * and each task's queue, time limits as configured (TASK_TIME_LIMITS, its own, the defaults) and
 * schedule. Limits changed at run time (the time_limit control) live in the workers, not here.
 */
export function configView(ctx: DashboardContext): ConfigView {
  const settings = Object.entries(ctx.settings)
    .filter(([, value]) => typeof value !== 'function')
    .map(([name, value]: [string, unknown]) => ({
      name,
      value: isSecretName(name)
        ? value === undefined || value === null
          ? null
          : '(hidden)'
        : (ctx.scrub.value(value) ?? null),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const tasks = [...ctx.runtime.tasks.values()]
    .map((task) => {
      const limits = timeLimitsOf(task, ctx.settings);
      return {
        name: task.name,
        queue: task.queue,
        softSeconds: limits.softSeconds,
        hardSeconds: limits.hardSeconds,
        schedule: task.schedule?.cron ?? null,
        scheduleEnabled: task.schedule === undefined ? null : task.schedule.enabled(ctx.settings),
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
  return { settings, tasks };
}
