import type { Settings } from '../config/index.ts';
import { migrate, type Migration, type Pool } from '../db/index.ts';
import { builtinRollups } from './builtin-rollups.ts';
import type { RollupDefinition } from './definition.ts';
import { installRollups } from './install.ts';
import { createMaterializedViews } from './materialized-views.ts';
import { ensureFuturePartitions } from './partitions.ts';

/**
 * `aggjobs migrate`: numbered SQL migrations, then what the rollup definitions derive (rollup tables,
 * change capture on their sources), the partitions of the next PARTITION_LEAD_DAYS of every source
 * the application partitioned by time (src/rollups/partitions.ts), then the materialized views.
 * Idempotent.
 */
export async function prepareDatabase(
  pool: Pool,
  settings: Pick<Settings, 'analyticsTimezone'> & Partial<Pick<Settings, 'partitionLeadDays'>>,
  options: { rollups?: readonly RollupDefinition[]; onApply?: (m: Migration) => void } = {},
): Promise<{ applied: Migration[]; viewsCreated: string[]; partitionsCreated: string[] }> {
  const applied = await migrate(pool, { onApply: options.onApply });
  const rollups = options.rollups ?? builtinRollups;
  await installRollups(pool, rollups);
  const ensured = await ensureFuturePartitions(pool, [...new Set(rollups.map((r) => r.source))], {
    leadDays: settings.partitionLeadDays ?? 7,
  });
  const viewsCreated = await createMaterializedViews(pool, { timezone: settings.analyticsTimezone });
  return { applied, viewsCreated, partitionsCreated: ensured.flatMap((e) => e.created) };
}
