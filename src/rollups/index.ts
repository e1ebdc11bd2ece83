export type { RollupDefinition, Grain, Dimension, Measure } from './definition.ts';
export { grainLabel } from './definition.ts';
export { builtinRollups } from './builtin-rollups.ts';
export { installRollups, checkDefinition } from './install.ts';
export {
  installCoveringIndexes,
  planCoveringIndexes,
  type CoveringIndex,
  type CoveringIndexChanges,
} from './covering-index.ts';
export {
  refreshRollup,
  pruneChangeLog,
  RefreshAbortedError,
  type RefreshResult,
  type RefreshMode,
  type RefreshOptions,
} from './refresh.ts';
export {
  createMaterializedViews,
  refreshMaterializedViews,
  materializedViewNames,
  type ViewRefreshResult,
  type ViewRefreshOptions,
} from './materialized-views.ts';
export {
  cleanupOldData,
  defaultSources,
  rollupWatermarkKey,
  type CleanupResult,
  type RetentionPolicy,
} from './retention.ts';
export { prepareDatabase } from './prepare-database.ts';
export {
  ensureFuturePartitions,
  partitionCoverage,
  timePartitionsOf,
  type EnsuredPartitions,
  type PartitionCoverage,
  type TimePartitionedTable,
  type TimePartition,
} from './partitions.ts';
export { createPartitionedSources, type CreatedSources } from './partitioned-sources.ts';
export {
  definitionFingerprint,
  canonicalDefinition,
  RollupRebuildRequiredError,
  type IdentityChange,
} from './build-identity.ts';
export { rollupsNeedingRebuild, type RebuildNeeded } from './identity-state.ts';
export { rebuildRollup, type RebuildOptions, type RebuildPlan, type RebuildResult } from './rebuild.ts';
