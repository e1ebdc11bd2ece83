import type { Pool, PoolClient } from '../db/index.ts';
import type { IdentityChange } from './build-identity.ts';
import { placeRecreatedRollup } from './citus-install.ts';
import type { RollupDefinition } from './definition.ts';
import {
  identityOf,
  identityStateSelect,
  recordIdentityParams,
  recordIdentitySql,
  type IdentityStateColumns,
} from './identity-state.ts';
import { readSourcePartitions } from './partition-changes.ts';
import { inRollupTransaction } from './rollup-session.ts';
import { syncStateColumns } from './delta-state.ts';
import { rollupSql } from './rollup-sql.ts';
import { ident, qualified } from './sql-identifier.ts';

export interface RebuildOptions {
  timezone: string;
  /** Per statement: one chunk of about a month of source rows. */
  statementTimeoutMs?: number;
  lockTimeoutMs?: number;
  workMem?: string;
  signal?: AbortSignal;
  /**
   * Also delete the frozen buckets (those before the retention cutoff). Default: kept as they are —
   * their source rows are gone, so they cannot be recomputed, and deleting them loses history.
   */
  dropFrozen?: boolean;
  /** Called once the work is known, before the long part. */
  onPlan?: (plan: RebuildPlan) => void;
  /** Called after each chunk, with the source rows folded in so far. */
  onProgress?: (sourceRowsDone: number) => void;
}

export interface RebuildPlan {
  rollup: string;
  /** What differed from the rows' builder (empty: a rebuild nothing required). */
  changes: IdentityChange[];
  /** Source rows from the first unfrozen bucket on: what the rebuild reads. */
  sourceRows: number;
  chunks: number;
  /** First unfrozen bucket (null: nothing is frozen). */
  frozenBefore: string | null;
  /** Rows of frozen buckets, kept unless dropFrozen (or lost with a recreated table). */
  frozenRows: number;
  /** The table's columns or key no longer matched the definition: it is dropped and created again. */
  tableRecreated: boolean;
}

export interface RebuildResult extends RebuildPlan {
  /** Groups (buckets × dimension values) computed from the source rows: the rows of the new table. */
  rowsWritten: number;
  /** Unfrozen rows removed before recomputing (the old rows). */
  rowsDeleted: number;
  frozenRowsKept: number;
  frozenRowsDropped: number;
  /** The new horizon: incremental refreshes continue from here. */
  horizon: string;
  durationMs: number;
}

/** Does analytics.<name> still have exactly the columns and key the definition derives? */
async function tableMatches(client: PoolClient, def: RollupDefinition): Promise<boolean | 'missing'> {
  const { rows } = await client.query<{ columns: string[] | null; key: string[] | null }>(
    `SELECT (SELECT array_agg(attname::text ORDER BY attname) FROM pg_attribute
             WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped) AS columns,
            (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
             WHERE i.indrelid = c.oid AND i.indisprimary) AS key
     FROM (SELECT to_regclass(format('analytics.%I', $1::text)) AS oid) c`,
    [def.name],
  );
  const row = rows[0];
  if (row?.columns == null) return 'missing';
  // State columns (delta-state.ts) are the engine's: added or dropped by syncStateColumns.
  row.columns = row.columns.filter((c) => !c.startsWith('aggjobs_state_'));
  const key = ['bucket_start', ...def.dimensions.map((d) => d.column)].sort();
  const columns = [...key, ...def.measures.map((m) => m.name), 'updated_at'].sort();
  return (
    JSON.stringify(row.columns) === JSON.stringify(columns) && JSON.stringify(row.key) === JSON.stringify(key)
  );
}

/**
 * `aggjobs rollups rebuild`: recomputes one rollup from its source rows in the given zone, with its
 * current definition, in this cluster, and records that identity with a fresh snapshot, in one
 * REPEATABLE READ transaction (readers see the old table until it commits).
 *
 * What it cannot bring back: buckets before the retention cutoff, whose source rows retention
 * deleted. They are kept as they were built (another zone or definition, if that is what changed)
 * unless `dropFrozen`; a table whose columns or key changed is created again and loses them.
 *
 * Cost: one read of every unfrozen source row, in chunks of about a month (progress after each),
 * and one write per group. Writers are never blocked (reads only on the source); the transaction's
 * snapshot is held for the whole rebuild. Serialized with refreshes by the same advisory lock.
 */
export async function rebuildRollup(
  pool: Pool,
  def: RollupDefinition,
  options: RebuildOptions,
): Promise<RebuildResult> {
  const sql = rollupSql(def);
  const target = `analytics.${ident(def.name)}`;
  const started = performance.now();
  return await inRollupTransaction(pool, def, 'rebuild', options, async (client) => {
    // jit off, as a refresh (refresh.ts: its window statements ran slower compiled).
    await client.query(
      `SELECT set_config('statement_timeout', $1, true), set_config('work_mem', $2, true),
              set_config('jit', 'off', true)`,
      [String(options.statementTimeoutMs ?? 600_000), options.workMem ?? '64MB'],
    );
    // The transaction's snapshot is taken here: every source row this rebuild reads is visible in
    // it, every later write is not, so the next incremental refresh takes exactly those.
    const { rows: stateRows } = await client.query<
      {
        cutoff: Date | null;
        next: string;
        nextSnapshot: string;
      } & IdentityStateColumns
    >(
      // $1 rollup. Frozen before the later of the source's retention watermark and the rollup's own.
      `SELECT (SELECT max(w.cutoff) FROM aggjobs.retention_watermarks w
               WHERE w.source_table IN (s.source_table, 'analytics.' || s.rollup)) AS cutoff,
              pg_snapshot_xmin(pg_current_snapshot())::text AS next, pg_current_snapshot()::text AS "nextSnapshot",
              ${identityStateSelect}
       FROM aggjobs.rollup_state s WHERE s.rollup = $1`,
      [def.name],
    );
    const state = stateRows[0];
    if (state === undefined) throw new Error(`rollup ${def.name} is not installed: run aggjobs migrate`);
    const identity = identityOf(def, options.timezone, state);
    // Read at the start, as the rows are (partition-changes.ts): the next refresh compares with them.
    const partitions = await readSourcePartitions(client, def);

    const shape = await tableMatches(client, def);
    const tableRecreated = shape === false;
    if (tableRecreated) await client.query(`DROP TABLE ${target}`);
    if (shape !== true) {
      await client.query(sql.createTable);
      // On Citus: distributed and co-located with its source again (its shards are new placements,
      // which each node's next incremental refresh recomputes whole).
      await placeRecreatedRollup(client, def);
    }
    await syncStateColumns(client, def);

    const cutoff: Date | string = state.cutoff ?? '-infinity';
    const { rows: aligned } = await client.query<{ lo: string }>(
      `SELECT to_json(lo) #>> '{}' AS lo FROM (${sql.alignWindow}) w`,
      ['-infinity', 'infinity', options.timezone, cutoff],
    );
    const lo = aligned[0]?.lo ?? '-infinity';
    const frozenBefore = state.cutoff === null ? null : lo;
    const { rows: frozen } = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM ${target} WHERE bucket_start < $1::timestamptz`,
      [lo],
    );
    const frozenRows = Number(frozen[0]?.n ?? 0);

    // Source rows per month from the first unfrozen bucket on: the cost, and the chunks.
    const { rows: months } = await client.query<{ month: string; n: string }>(
      `SELECT to_json(date_trunc('month', ${ident(def.timeColumn)}, 'UTC')) #>> '{}' AS month, count(*) AS n
       FROM ${qualified(def.source)} WHERE ${ident(def.timeColumn)} >= $1::timestamptz GROUP BY 1 ORDER BY 1`,
      [lo],
    );
    const plan: RebuildPlan = {
      rollup: def.name,
      changes: identity.changes,
      sourceRows: months.reduce((s, m) => s + Number(m.n), 0),
      chunks: months.length,
      frozenBefore,
      frozenRows,
      tableRecreated,
    };
    options.onPlan?.(plan);

    let frozenRowsDropped = 0;
    if (options.dropFrozen === true && frozenRows > 0) {
      const { rowCount } = await client.query(`DELETE FROM ${target} WHERE bucket_start < $1::timestamptz`, [
        lo,
      ]);
      frozenRowsDropped = rowCount ?? 0;
    }
    const { rowCount: deleted } = await client.query(
      `DELETE FROM ${target} WHERE bucket_start >= $1::timestamptz`,
      [lo],
    );

    // Chunks end on bucket boundaries (a month's end rounded up to the end of its bucket), so
    // every bucket is computed whole, once.
    let from = lo;
    let done = 0;
    let written = 0;
    for (const [i, month] of months.entries()) {
      const next = months[i + 1];
      let to = 'infinity';
      if (next !== undefined) {
        const { rows } = await client.query<{ hi: string }>(
          `SELECT to_json(hi) #>> '{}' AS hi FROM (${sql.alignWindow}) w`,
          [from, next.month, options.timezone, cutoff],
        );
        to = rows[0]?.hi ?? 'infinity';
      }
      const later = to === 'infinity' || from === '-infinity' || Date.parse(to) > Date.parse(from);
      if (later) {
        const { rows } = await client.query<{ written: string }>(sql.refreshWindow, [
          from,
          to,
          options.timezone,
        ]);
        written += Number(rows[0]?.written ?? 0);
        from = to;
      }
      done += Number(month.n);
      options.onProgress?.(done);
    }

    const durationMs = Math.round(performance.now() - started);
    const result: RebuildResult = {
      ...plan,
      rowsWritten: written,
      rowsDeleted: deleted ?? 0,
      frozenRowsKept: tableRecreated ? 0 : frozenRows - frozenRowsDropped,
      frozenRowsDropped,
      horizon: state.next,
      durationMs,
    };
    // $1 rollup, $2 horizon, $3 snapshot, $4 result, $5 the source's partitions (partition-changes.ts)
    await client.query(
      `UPDATE aggjobs.rollup_state
       SET horizon = $2::xid8, snapshot = $3::pg_snapshot, snapshot_xid = pg_current_xact_id(),
           horizon_at = now(), last_refresh_at = now(),
           last_result = $4::jsonb, source_partitions = $5::jsonb
       WHERE rollup = $1`,
      [
        def.name,
        state.next,
        state.nextSnapshot,
        JSON.stringify({ mode: 'rebuild', ...result }),
        JSON.stringify(partitions),
      ],
    );
    await client.query(recordIdentitySql, recordIdentityParams(def.name, identity.current));
    return result;
  });
}
