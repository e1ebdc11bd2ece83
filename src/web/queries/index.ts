export { searchRuns } from './task-runs.ts';
export { rollupStatuses, viewStatuses, type RollupStatus } from './rollup-status.ts';
export { rollupSeries, additiveMeasures, hasWorkspace, knownWorkspaces } from './rollup-series.ts';
export { timedPool, DASHBOARD_STATEMENT_TIMEOUT_MS } from './timed-pool.ts';
export { settle, readTimeoutReason, type Read } from './read-failure.ts';
