export type { RollupDefinition, Grain, Dimension, Measure } from './definition.ts';
export { grainLabel } from './definition.ts';
export { builtinRollups } from './builtin-rollups.ts';
export { installRollups } from './install.ts';
export { installCoveringIndexes, planCoveringIndexes } from './covering-index.ts';
export {
  refreshRollup,
  pruneChangeLog,
  pruneUnreadChangeLog,
  pruneSeenTruncations,
  RefreshAbortedError,
  type RefreshResult,
  type RefreshMode,
} from './refresh.ts';
export {
  createMaterializedViews,
  refreshMaterializedViews,
  materializedViewNames,
  type ViewRefreshResult,
} from './materialized-views.ts';
export { cleanupOldData, defaultSources, rollupWatermarkKey, type CleanupResult } from './retention.ts';
export { prepareDatabase } from './prepare-database.ts';
export { ensureFuturePartitions, partitionCoverage, type EnsuredPartitions } from './partitions.ts';
export { RollupRebuildRequiredError } from './build-identity.ts';
export { rollupsNeedingRebuild, type RebuildNeeded } from './identity-state.ts';
export { rebuildRollup, type RebuildResult } from './rebuild.ts';
