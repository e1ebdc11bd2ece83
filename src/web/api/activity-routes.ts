import { Hono } from 'hono';
import type { DashboardContext } from '../dashboard-context.ts';
import type { DashboardEnv } from '../dashboard-env.ts';
import { isOpenState, runSeries, taskSummaries } from '../../runtime/index.ts';
import { backfillStatusOf, recordedBackfillProgress } from '../../tasks/index.ts';
import { runJson } from '../services/index.ts';
import { notFound, parseInput } from './http-error.ts';
import { boundedParam } from './bounded-input.ts';
import { backfillBody, runStatsQuery } from './input-schemas.ts';
import { readJsonBody } from './read-body.ts';

/** Bucket width of the throughput charts: 5 minutes up to 6 hours, hours up to 3 days, else days. */
export function bucketSecondsFor(hours: number): number {
  return hours <= 6 ? 300 : hours <= 72 ? 3600 : 86_400;
}

export async function runStatsOf(ctx: DashboardContext, hours: number, task: string | undefined) {
  const bucketSeconds = bucketSecondsFor(hours);
  const [series, summaries] = await Promise.all([
    runSeries(ctx.pool, { hours, bucketSeconds, task }),
    taskSummaries(ctx.pool, hours),
  ]);
  return {
    hours,
    bucketSeconds,
    task: task ?? null,
    series: series.map((b) => ({ ...b, bucket: b.bucket.toISOString() })),
    tasks: summaries,
  };
}

/**
 * The last backfills, each with its status (backfillStatusOf: `cancelled` for a cancelled one) and
 * progress: live from its windows while it runs, as its result recorded it once finished (a rerun of
 * the same range changes the windows, not what an earlier run did).
 */
export async function backfillList(ctx: DashboardContext) {
  const runs = await ctx.control.runs({ task: 'backfill_aggregations', limit: 20 });
  return await Promise.all(
    runs.map(async (run) => {
      const live = isOpenState(run.state);
      const progress = live
        ? await ctx.control.backfillProgress(run.id).catch(() => undefined)
        : recordedBackfillProgress(run.result);
      return {
        run: runJson(run, ctx.scrub),
        status: backfillStatusOf(run, progress),
        progress: progress ?? null,
      };
    }),
  );
}

/** Health, throughput and duration over time, and backfills. */
export function activityRoutes(ctx: DashboardContext): Hono<DashboardEnv> {
  const app = new Hono<DashboardEnv>();

  app.get('/health', async (c) => {
    const report = ctx.scrub.value(await ctx.health.report(c.req.query('fresh') === '1'));
    return c.json(report, report.status === 'unhealthy' ? 503 : 200);
  });

  app.get('/stats/runs', async (c) => {
    const query = parseInput(runStatsQuery, c.req.query(), 'query');
    return c.json(await runStatsOf(ctx, query.hours ?? 24, query.task));
  });

  app.get('/backfills', async (c) => c.json({ backfills: await backfillList(ctx) }));

  app.post('/backfills', async (c) => {
    const body = parseInput(backfillBody, await readJsonBody(c), 'body');
    const result = await ctx.runtime.enqueue('backfill_aggregations', { kwargs: body });
    ctx.logger.info({ runId: result.id, user: c.get('auth').user }, 'dashboard: backfill started');
    return c.json({ id: result.id, task: 'backfill_aggregations', state: 'queued' }, 202);
  });

  app.post('/backfills/:id/cancel', async (c) => {
    const id = boundedParam('id', c.req.param('id'));
    const run = await ctx.control.run(id);
    if (run === undefined || run.task !== 'backfill_aggregations') throw notFound(`backfill run ${id}`);
    const outcome = await ctx.control.cancelBackfill(id);
    ctx.logger.info({ runId: id, user: c.get('auth').user }, 'dashboard: backfill cancelled');
    return c.json({ id, ...outcome });
  });

  return app;
}
