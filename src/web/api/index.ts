export { apiRoutes } from './api-routes.ts';
export { HttpError, notFound, parseInput, problemsOf, type FieldProblem } from './http-error.ts';
export { workerJson } from './workers-routes.ts';
export { scheduleList } from './schedules-routes.ts';
export { seriesOf } from './rollups-routes.ts';
export { runStatsOf, backfillList } from './activity-routes.ts';
export { runListQuery, seriesQuery, runStatsQuery } from './input-schemas.ts';
export { boundedParam, checkRequestBounds } from './bounded-input.ts';
export { parseJsonText } from './read-body.ts';
