import type { Settings } from '../config/index.ts';
import { migrate, type Migration, type Pool } from '../db/index.ts';
import { builtinRollups } from './builtin-rollups.ts';
import type { RollupDefinition } from './definition.ts';
import { installRollups } from './install.ts';
import { createMaterializedViews } from './materialized-views.ts';

/**
 * `aggjobs migrate`: numbered SQL migrations, then what the rollup definitions derive (rollup tables,
 * change capture on their sources), then the materialized views. Idempotent.
 */
export async function prepareDatabase(
  pool: Pool,
  settings: Pick<Settings, 'analyticsTimezone'>,
  options: { rollups?: readonly RollupDefinition[]; onApply?: (m: Migration) => void } = {},
): Promise<{ applied: Migration[]; viewsCreated: string[] }> {
  const applied = await migrate(pool, { onApply: options.onApply });
  await installRollups(pool, options.rollups ?? builtinRollups);
  const viewsCreated = await createMaterializedViews(pool, { timezone: settings.analyticsTimezone });
  return { applied, viewsCreated };
}
