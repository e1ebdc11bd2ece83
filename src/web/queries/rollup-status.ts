import type { Queryable } from '../../db/index.ts';
import {
  grainLabel,
  rollupsNeedingRebuild,
  type RebuildNeeded,
  type RollupDefinition,
} from '../../rollups/index.ts';
import { citusRowEstimates } from '../../rollups/citus-health.ts';

export interface RollupStatus {
  table: string;
  source: string;
  grain: string;
  /** Every source write by a transaction below this id is folded in (xid8 as text). */
  horizon: string | null;
  horizonAt: Date | null;
  lastRefreshAt: Date | null;
  /** Seconds since the state the rollup reflects (its horizon time, else its last refresh). */
  lagSeconds: number | null;
  /** pg_stat_user_tables.n_live_tup: the statistics' row count, not an exact count (on Citus, summed over the shards). */
  rowsEstimate: number | null;
  lastResult: unknown;
  /** Built under another zone, definition or cluster: refreshes refuse until this is rebuilt. */
  rebuild: RebuildNeeded | null;
}

export interface ViewStatus {
  view: string;
  refreshedAt: Date | null;
  durationMs: number | null;
  lagSeconds: number | null;
  rowsEstimate: number | null;
}

/**
 * Every rollup's freshness, size and last refresh figures (aggjobs.rollup_state); with `timezone`
 * (ANALYTICS_TIMEZONE), also whether it needs a rebuild.
 */
export async function rollupStatuses(
  db: Queryable,
  rollups: readonly RollupDefinition[],
  timezone?: string,
): Promise<RollupStatus[]> {
  const rebuilds = timezone === undefined ? [] : await rollupsNeedingRebuild(db, rollups, timezone);
  // $1 rollup table names
  const { rows } = await db.query<{
    rollup: string;
    horizon: string | null;
    horizon_at: Date | null;
    last_refresh_at: Date | null;
    last_result: unknown;
    lag_s: number | null;
    n_live_tup: string | null;
  }>(
    `SELECT r.rollup, s.horizon::text AS horizon, s.horizon_at, s.last_refresh_at, s.last_result,
            extract(epoch FROM now() - coalesce(s.horizon_at, s.last_refresh_at))::float8 AS lag_s,
            st.n_live_tup
     FROM unnest($1::text[]) AS r(rollup)
     LEFT JOIN aggjobs.rollup_state s USING (rollup)
     LEFT JOIN pg_stat_user_tables st ON st.schemaname = 'analytics' AND st.relname = r.rollup`,
    [rollups.map((r) => r.name)],
  );
  // On Citus the coordinator's table of a distributed rollup holds no rows: its shards' statistics.
  const distributed = await citusRowEstimates(
    db,
    rollups.map((r) => `analytics.${r.name}`),
  );
  return rollups.map((def) => {
    const row = rows.find((r) => r.rollup === def.name);
    const shards = distributed?.get(`analytics.${def.name}`);
    return {
      table: def.name,
      source: def.source,
      grain: grainLabel(def.grain),
      horizon: row?.horizon ?? null,
      horizonAt: row?.horizon_at ?? null,
      lastRefreshAt: row?.last_refresh_at ?? null,
      lagSeconds: row?.lag_s == null ? null : Math.round(row.lag_s),
      rowsEstimate: shards ?? (row?.n_live_tup == null ? null : Number(row.n_live_tup)),
      lastResult: row?.last_result ?? null,
      rebuild: rebuilds.find((r) => r.rollup === def.name) ?? null,
    };
  });
}

/** The materialized views and their last refresh (aggjobs.view_refreshes). */
export async function viewStatuses(db: Queryable, views: readonly string[]): Promise<ViewStatus[]> {
  // $1 view names (without schema)
  const { rows } = await db.query<{
    view: string;
    refreshed_at: Date | null;
    duration_ms: number | null;
    lag_s: number | null;
    rows_estimate: number | null;
  }>(
    `SELECT v.view, r.refreshed_at, r.duration_ms,
            extract(epoch FROM now() - r.refreshed_at)::float8 AS lag_s,
            c.reltuples::float8 AS rows_estimate
     FROM unnest($1::text[]) AS v(view)
     LEFT JOIN aggjobs.view_refreshes r ON r.view_name IN (v.view, 'analytics.' || v.view)
     LEFT JOIN pg_class c ON c.oid = to_regclass('analytics.' || quote_ident(v.view))`,
    [views.map((v) => v.replace(/^analytics\./, ''))],
  );
  return rows.map((r) => ({
    view: r.view,
    refreshedAt: r.refreshed_at,
    durationMs: r.duration_ms,
    lagSeconds: r.lag_s === null ? null : Math.round(r.lag_s),
    rowsEstimate: r.rows_estimate === null || r.rows_estimate < 0 ? null : Math.round(r.rows_estimate),
  }));
}
