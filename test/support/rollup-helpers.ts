import type { Pool } from '../../src/db/index.ts';
import {
  builtinRollups,
  refreshRollup,
  type RefreshMode,
  type RefreshResult,
} from '../../src/rollups/index.ts';

/** Incremental refresh of every built-in rollup (or a window refresh of each), in definition order. */
export async function refreshAll(
  pool: Pool,
  timezone: string,
  mode: RefreshMode = { kind: 'incremental' },
): Promise<RefreshResult[]> {
  const results: RefreshResult[] = [];
  for (const def of builtinRollups) results.push(await refreshRollup(pool, def, { timezone, mode }));
  return results;
}

/** Empties sources, rollups and engine state, as on a new database. */
export async function resetData(pool: Pool): Promise<void> {
  const rollupTables = builtinRollups.map((d) => `analytics.${d.name}`).join(', ');
  await pool.query(`
    TRUNCATE public.execution_logs, public.user_activity_events, public.credit_transactions, public.workspaces,
             aggjobs.change_log, aggjobs.retention_watermarks, aggjobs.view_refreshes, ${rollupTables};
    UPDATE aggjobs.rollup_state SET snapshot = NULL, horizon = NULL, horizon_at = NULL, last_refresh_at = NULL, last_result = NULL;`);
}
