import { Hono } from 'hono';
import type { DashboardContext } from '../dashboard-context.ts';
import type { DashboardEnv } from '../dashboard-env.ts';
import { runJson, type RunJson } from '../services/index.ts';
import { notFound } from './http-error.ts';
import { boundedParam } from './bounded-input.ts';

export interface ScheduleJson {
  task: string;
  cron: string;
  timezone: string;
  queue: string;
  enabled: boolean;
  nextRunAt: string | null;
  lastSlot: string | null;
  lastRun: RunJson | null;
}

export async function scheduleList(ctx: DashboardContext): Promise<ScheduleJson[]> {
  const schedules = await ctx.control.schedules();
  return await Promise.all(
    schedules.map(async (s) => {
      const last = s.lastRun === null ? undefined : await ctx.control.run(s.lastRun.id);
      return {
        task: s.task,
        cron: s.cron,
        timezone: s.timezone,
        queue: s.queue,
        enabled: s.enabled,
        nextRunAt: s.nextRunAt?.toISOString() ?? null,
        lastSlot: s.lastSlot?.toISOString() ?? null,
        lastRun: last === undefined ? null : runJson(last, ctx.scrub),
      };
    }),
  );
}

/** The beat's periodic tasks, and "run now". */
export function schedulesRoutes(ctx: DashboardContext): Hono<DashboardEnv> {
  const app = new Hono<DashboardEnv>();
  app.get('/schedules', async (c) =>
    c.json({ beat: await ctx.control.beat(), schedules: await scheduleList(ctx) }),
  );
  app.post('/schedules/:task/run', async (c) => {
    const task = boundedParam('task', c.req.param('task'));
    if (!(await ctx.control.schedules()).some((s) => s.task === task)) throw notFound(`schedule ${task}`);
    const result = await ctx.runtime.enqueue(task, {});
    ctx.logger.info({ task, runId: result.id, user: c.get('auth').user }, `dashboard: run now ${task}`);
    return c.json({ id: result.id, task, state: 'queued' }, 202);
  });
  return app;
}
