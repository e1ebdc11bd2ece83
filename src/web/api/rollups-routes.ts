import { Hono } from 'hono';
import type { RollupDefinition } from '../../rollups/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import type { DashboardEnv } from '../dashboard-env.ts';
import { hasWorkspace, rollupSeries, rollupStatuses, viewStatuses } from '../queries/index.ts';
import { HttpError, notFound, parseInput } from './http-error.ts';
import { boundedParam } from './bounded-input.ts';
import { seriesQuery } from './input-schemas.ts';

const DAY_MS = 86_400_000;

/** The default range of a series: about 48 hours of hourly buckets, 60 days of daily ones, … */
export function defaultRange(def: RollupDefinition, now: Date): { from: Date; to: Date } {
  const span =
    def.grain === 'hour'
      ? 2 * DAY_MS
      : def.grain === 'day'
        ? 60 * DAY_MS
        : def.grain === 'week'
          ? 26 * 7 * DAY_MS
          : def.grain === 'month'
            ? 730 * DAY_MS
            : 200 * def.grain.minutes * 60_000;
  return { from: new Date(now.getTime() - span), to: new Date(now.getTime() + 60_000) };
}

function findRollup(ctx: DashboardContext, table: string): RollupDefinition {
  const def = ctx.rollups.find((r) => r.name === table || `analytics.${r.name}` === table);
  if (def === undefined) throw notFound(`rollup table ${table}`);
  return def;
}

export async function seriesOf(
  ctx: DashboardContext,
  def: RollupDefinition,
  query: { workspace?: number | undefined; from?: Date | undefined; to?: Date | undefined },
) {
  if (query.workspace !== undefined && !hasWorkspace(def)) {
    throw new HttpError(400, `${def.name} has no workspace_id`, [
      { field: 'workspace', rule: `not allowed: ${def.name} has no workspace_id dimension` },
    ]);
  }
  const range = defaultRange(def, new Date());
  const from =
    query.from ??
    (query.to === undefined
      ? range.from
      : new Date(query.to.getTime() - (range.to.getTime() - range.from.getTime())));
  const to = query.to ?? range.to;
  const points = await rollupSeries(ctx.pool, def, { from, to, workspaceId: query.workspace });
  return {
    table: def.name,
    grain: typeof def.grain === 'string' ? def.grain : `${def.grain.minutes}m`,
    workspace: query.workspace ?? null,
    from: from.toISOString(),
    to: to.toISOString(),
    points: points.map((p) => ({ bucket: p.bucket.toISOString(), ...p.values })),
  };
}

/** Rollup freshness and figures, and a rollup's measures over time. */
export function rollupsRoutes(ctx: DashboardContext): Hono<DashboardEnv> {
  const app = new Hono<DashboardEnv>();
  app.get('/rollups', async (c) =>
    c.json({
      rollups: await rollupStatuses(ctx.pool, ctx.rollups, ctx.settings.analyticsTimezone),
      views: await viewStatuses(ctx.pool, ctx.views),
    }),
  );
  app.get('/rollups/:table/series', async (c) => {
    const def = findRollup(ctx, boundedParam('table', c.req.param('table')));
    const query = parseInput(seriesQuery, c.req.query(), 'query');
    return c.json(await seriesOf(ctx, def, query));
  });
  return app;
}
