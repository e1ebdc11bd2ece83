/**
 * Retention (README "Retention"). Before deleting, cleanup records in `aggjobs.retention_watermarks`
 * how far it deletes in every table it deletes from: source tables under their own name, expiring
 * rollups under their table's name (`rollupWatermarkKey`). A rollup bucket that starts before the
 * later of its source's watermark and its own is frozen: no incremental refresh, window refresh or
 * backfill writes it again. So an expired hourly bucket stays expired even where its source rows are
 * kept: credit transactions are a ledger, never deleted, so their daily rollup stays exact over all
 * of history, while their hourly rollup, like every hourly rollup, holds the last 2 × retention.
 */
import type { Pool } from '../db/index.ts';
import { withTransaction } from '../db/index.ts';
import { citusInstalled } from './citus-install.ts';
import type { RollupDefinition } from './definition.ts';
import { olderRowsPartitionName } from './partition-bounds.ts';
import {
  attachNewPartition,
  defaultDdlLimits,
  detachAndDrop,
  expiredPartitions,
  timePartitionsOf,
  type DdlLimits,
  type DroppedPartitions,
} from './partitions.ts';
import { ident, qualified } from './sql-identifier.ts';

export interface RetentionPolicy {
  /** Source rows older than this many days are deleted. */
  retentionDays: number;
  /** Source tables cleaned, with their time column. The seed's policy: execution logs and activity events. */
  sources: ReadonlyArray<{ table: string; timeColumn: string }>;
  /**
   * Hourly (and finer) rollups are kept `rollupRetentionFactor` × retentionDays, whatever their
   * source; daily and coarser forever.
   */
  rollupRetentionFactor: number;
  batchSize: number;
  /**
   * How long to wait for a refresh of an expiring rollup that is in progress before deleting its
   * expired rows (default 15 min: a refresh's main statement is bounded by ROLLUP_STATEMENT_TIMEOUT_MS,
   * 10 min by default). Past it the cleanup fails, having deleted none of that rollup's rows.
   */
  refreshWaitMs?: number;
  /** Lock timeout and retries of each DETACH and DROP of a partitioned source. */
  partitionDdl?: DdlLimits;
}

export const defaultSources = [
  { table: 'public.execution_logs', timeColumn: 'started_at' },
  { table: 'public.user_activity_events', timeColumn: 'occurred_at' },
] as const;

/**
 * Each batch waits at most 1 s for a lock, and its statement is bounded too: a batch of
 * CLEANUP_BATCH_SIZE rows takes well under a second; 30 s only stops one that went wrong.
 */
const batchLimits = { lock_timeout: '1s', statement_timeout: '30s' };

export interface CleanupResult {
  retentionDays: number;
  /** Source rows before this time were deleted; rollup buckets that start before it are now frozen. */
  sourceCutoff: string;
  /** Hourly (and finer) rollup rows whose bucket starts before this time were deleted; those buckets are frozen. */
  rollupCutoff: string;
  /** Rows deleted per table, by plain name (`public.execution_logs`, `analytics.execution_metrics_hourly`). */
  deleted: Record<string, number>;
  /**
   * Per source table partitioned by its time column: the partitions dropped whole instead of
   * deleting rows, and its watermark (the start of the oldest partition kept, at or before
   * sourceCutoff; null when no partition lies entirely before the cutoff: nothing dropped).
   */
  partitions: Record<string, { watermark: string | null; dropped: string[] }>;
  batches: number;
  durationMs: number;
}

/**
 * The key of a rollup's own watermark in `aggjobs.retention_watermarks`: its table's name. Its rows
 * before the cutoff were deleted by retention, as a source table's are under the source's name.
 */
export function rollupWatermarkKey(rollup: string): string {
  return `analytics.${rollup}`;
}

/**
 * Deletes rows past retention in bounded batches (each batch a short transaction, so no statement
 * holds locks for long). The watermark moves first, in its own transaction: from then on the buckets
 * before it are frozen, so the deletes that follow never change a rollup — and the change-capture
 * trigger is told to ignore them (`aggjobs.retention = on`).
 */
export async function cleanupOldData(
  pool: Pool,
  rollups: readonly RollupDefinition[],
  policy: RetentionPolicy,
  options: {
    signal?: AbortSignal;
    onProgress?: (table: string, deleted: number) => void;
    /** The time retention counts back from (default: now()); the benchmark aligns it to a day. */
    asOf?: Date;
  } = {},
): Promise<CleanupResult> {
  const started = performance.now();
  // $1 days, $2 factor, $3 as of (NULL: now)
  const { rows } = await pool.query<{ source_cutoff: Date; rollup_cutoff: Date }>(
    `SELECT coalesce($3::timestamptz, now()) - make_interval(days => $1) AS source_cutoff,
            coalesce($3::timestamptz, now()) - make_interval(days => $1 * $2) AS rollup_cutoff`,
    [policy.retentionDays, policy.rollupRetentionFactor, options.asOf ?? null],
  );
  // On Citus a ctid names a row of one shard only: there rollup rows are named by their key.
  const citus = await citusInstalled(pool);
  const sourceCutoff = rows[0]?.source_cutoff ?? new Date(0);
  const rollupCutoff = rows[0]?.rollup_cutoff ?? new Date(0);
  const deleted: Record<string, number> = {};
  const partitions: CleanupResult['partitions'] = {};
  let batches = 0;

  const deleteInBatches = async (
    name: string,
    table: string,
    where: string,
    key: string,
    cutoff: Date,
    retention: boolean,
  ): Promise<void> => {
    deleted[name] = 0;
    for (;;) {
      if (options.signal?.aborted === true) throw new Error('cleanup aborted');
      const n = await withTransaction(
        pool,
        async (client) => {
          const result = await client.query(
            `DELETE FROM ${table} WHERE (${key}) IN (SELECT ${key} FROM ${table} WHERE ${where} < $1 LIMIT $2)`,
            [cutoff, policy.batchSize],
          );
          return result.rowCount ?? 0;
        },
        { settings: retention ? { 'aggjobs.retention': 'on', ...batchLimits } : batchLimits },
      );
      batches += 1;
      deleted[name] = (deleted[name] ?? 0) + n;
      options.onProgress?.(name, deleted[name] ?? 0);
      if (n < policy.batchSize) return;
    }
  };

  // $1 table, $2 cutoff. A watermark never moves back: a later cleanup with a longer retention
  // cannot unfreeze buckets whose rows are gone.
  const moveWatermark = async (table: string, cutoff: Date): Promise<void> => {
    await pool.query(
      `INSERT INTO aggjobs.retention_watermarks (source_table, cutoff) VALUES ($1, $2)
       ON CONFLICT (source_table) DO UPDATE SET cutoff = greatest(retention_watermarks.cutoff, EXCLUDED.cutoff), updated_at = now()`,
      [table, cutoff],
    );
  };

  // A refresh of a rollup holds its advisory lock from before its snapshot until after its commit
  // (refreshRollup): taking that lock once waits for every refresh that could have read the old
  // watermark. $1 rollup name
  const waitForRefreshes = async (names: readonly string[]): Promise<void> => {
    for (const name of names)
      await withTransaction(
        pool,
        (client) =>
          client.query("SELECT pg_advisory_xact_lock(hashtext('aggjobs.rollup'), hashtext($1))", [name]),
        { settings: { lock_timeout: String(policy.refreshWaitMs ?? 900_000) } },
      );
  };

  for (const source of policy.sources) {
    // Partitioned by its time column (and no DEFAULT partition, where PostgreSQL refuses DETACH …
    // CONCURRENTLY): whole partitions are dropped, no row is deleted (docs/scaling.md). On Citus,
    // and for any other table, rows are deleted in batches.
    const info = citus ? undefined : await timePartitionsOf(pool, source.table);
    if (info !== undefined && info.column === source.timeColumn && !info.hasDefault) {
      deleted[source.table] = 0;
      const expired = expiredPartitions(info, sourceCutoff);
      if (expired === undefined) {
        partitions[source.table] = { watermark: null, dropped: [] };
        continue;
      }
      // The watermark first, at the start of the oldest partition kept; then no refresh that read
      // the old one may still be running: a dropped partition, unlike deleted rows, is gone from
      // every snapshot, so such a refresh would recompute a bucket from rows it no longer sees.
      await moveWatermark(source.table, expired.watermark);
      await waitForRefreshes(rollups.filter((r) => r.source === source.table).map((r) => r.name));
      const limits = policy.partitionDdl ?? defaultDdlLimits;
      const result: DroppedPartitions = {
        table: source.table,
        watermark: expired.watermark.toISOString(),
        dropped: await detachAndDrop(pool, source.table, expired.partitions, {
          limits,
          signal: options.signal,
        }),
      };
      // A layout with a MINVALUE partition (SOURCE_PARTITIONS makes one) keeps one, below the
      // oldest partition kept: a late row older than the retention still has somewhere to go (it is
      // before the watermark, so no rollup reads it, and the next cleanup drops it).
      if (expired.partitions.some((p) => p.from === null))
        await attachNewPartition(
          pool,
          source.table,
          olderRowsPartitionName(source.table),
          { from: null, to: expired.watermark },
          { limits, signal: options.signal },
        );
      partitions[source.table] = { watermark: result.watermark, dropped: result.dropped };
      options.onProgress?.(source.table, 0);
      continue;
    }
    await moveWatermark(source.table, sourceCutoff);
    await deleteInBatches(
      source.table,
      qualified(source.table),
      ident(source.timeColumn),
      'id',
      sourceCutoff,
      true,
    );
  }
  // Only hourly (and finer) rollups expire; daily and coarser are kept for ever. Each gets its own
  // watermark, so that an expired bucket stays expired even where the source rows are kept (credit
  // transactions): no late row, no backfill brings one group of it back.
  for (const rollup of rollups) {
    const fine = rollup.grain === 'hour' || typeof rollup.grain === 'object';
    if (!fine) continue;
    await moveWatermark(rollupWatermarkKey(rollup.name), rollupCutoff);
    // A refresh that read the old watermark could still write an expired group after the deletes
    // passed it: wait for every such refresh; a refresh that starts later sees the new watermark.
    await waitForRefreshes([rollup.name]);
    await deleteInBatches(
      rollupWatermarkKey(rollup.name),
      `analytics.${ident(rollup.name)}`,
      'bucket_start',
      citus ? ['bucket_start', ...rollup.dimensions.map((d) => ident(d.column))].join(', ') : 'ctid',
      rollupCutoff,
      false,
    );
  }
  return {
    retentionDays: policy.retentionDays,
    sourceCutoff: sourceCutoff.toISOString(),
    rollupCutoff: rollupCutoff.toISOString(),
    deleted,
    partitions,
    batches,
    durationMs: Math.round(performance.now() - started),
  };
}
