import type { Settings } from '../config/index.ts';
import { migrate, type Migration, type Pool } from '../db/index.ts';
import { builtinRollups } from './builtin-rollups.ts';
import type { RollupDefinition } from './definition.ts';
import { installRollups } from './install.ts';
import { createMaterializedViews } from './materialized-views.ts';
import { createPartitionedSources, type CreatedSources } from './partitioned-sources.ts';
import { ensureFuturePartitions } from './partitions.ts';

/**
 * `aggjobs migrate`: with SOURCE_PARTITIONS=day|week first the missing sources that retention
 * cleans, created partitioned (src/rollups/partitioned-sources.ts); numbered SQL migrations, then
 * what the rollup definitions derive (rollup tables, change capture on their sources), the partitions of the next PARTITION_LEAD_DAYS of every source
 * the application partitioned by time (src/rollups/partitions.ts), then the materialized views.
 * Idempotent.
 */
export async function prepareDatabase(
  pool: Pool,
  settings: Pick<Settings, 'analyticsTimezone'> &
    Partial<Pick<Settings, 'partitionLeadDays' | 'sourcePartitions' | 'retentionDays'>>,
  options: { rollups?: readonly RollupDefinition[]; onApply?: (m: Migration) => void } = {},
): Promise<{
  applied: Migration[];
  viewsCreated: string[];
  /** Tables created partitioned by SOURCE_PARTITIONS, with their first partitions. */
  sourcesCreated: CreatedSources['tables'];
  partitionsCreated: string[];
}> {
  const sources = await createPartitionedSources(pool, {
    width: settings.sourcePartitions ?? 'none',
    retentionDays: settings.retentionDays ?? 90,
  });
  const applied = await migrate(pool, { onApply: options.onApply });
  const rollups = options.rollups ?? builtinRollups;
  await installRollups(pool, rollups);
  const ensured = await ensureFuturePartitions(pool, [...new Set(rollups.map((r) => r.source))], {
    leadDays: settings.partitionLeadDays ?? 7,
  });
  const viewsCreated = await createMaterializedViews(pool, { timezone: settings.analyticsTimezone });
  return {
    applied,
    viewsCreated,
    sourcesCreated: sources.tables,
    partitionsCreated: ensured.flatMap((e) => e.created),
  };
}
