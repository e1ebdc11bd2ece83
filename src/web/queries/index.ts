export { searchRuns, type RunFilter } from './task-runs.ts';
export { rollupStatuses, viewStatuses, type RollupStatus, type ViewStatus } from './rollup-status.ts';
export {
  rollupSeries,
  additiveMeasures,
  hasWorkspace,
  knownWorkspaces,
  type SeriesPoint,
} from './rollup-series.ts';
export { timedPool, DASHBOARD_LOCK_TIMEOUT_MS, DASHBOARD_STATEMENT_TIMEOUT_MS } from './timed-pool.ts';
export { settle, readTimeoutReason, type Read } from './read-failure.ts';
