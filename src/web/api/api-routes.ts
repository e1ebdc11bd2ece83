import { Hono } from 'hono';
import type { DashboardContext } from '../dashboard-context.ts';
import type { DashboardEnv } from '../dashboard-env.ts';
import { activityRoutes } from './activity-routes.ts';
import { rollupsRoutes } from './rollups-routes.ts';
import { schedulesRoutes } from './schedules-routes.ts';
import { tasksRoutes } from './tasks-routes.ts';
import { workersRoutes } from './workers-routes.ts';

/** The JSON API, mounted at /api: everything the pages do (docs/api.md). */
export function apiRoutes(ctx: DashboardContext): Hono<DashboardEnv> {
  const app = new Hono<DashboardEnv>();
  app.route('/', tasksRoutes(ctx));
  app.route('/', workersRoutes(ctx));
  app.route('/', schedulesRoutes(ctx));
  app.route('/', rollupsRoutes(ctx));
  app.route('/', activityRoutes(ctx));
  return app;
}
