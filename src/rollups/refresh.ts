import type { Pool, PoolClient } from '../db/index.ts';
import type { RollupDefinition } from './definition.ts';
import { RollupRebuildRequiredError } from './build-identity.ts';
import { shardPairsByNode } from './citus-nodes.ts';
import { refreshOnNodes, type NodeRefreshResult } from './citus-refresh.ts';
import {
  identityOf,
  identityStateSelect,
  recordIdentityParams,
  recordIdentitySql,
  type IdentityStateColumns,
} from './identity-state.ts';
import {
  capturePartitions,
  partitionChanges,
  partitionKeySql,
  partitionsToRead,
  readSourcePartitions,
  type PartitionChange,
  type RecordedPartitions,
} from './partition-changes.ts';
import { refreshByDeltaSql } from './delta-state.ts';
import { rollupSql, type RollupSql } from './rollup-sql.ts';
import { inRollupTransaction } from './rollup-session.ts';

export { RefreshAbortedError } from './rollup-session.ts';

export type RefreshMode = { kind: 'incremental' } | { kind: 'window'; start: Date; end: Date };

/** What one refresh of one rollup did: the runtime's task results are built from these. */
export interface RefreshResult {
  rollup: string;
  /** `initial`: an incremental refresh of a rollup that had never run, so all of history was recomputed. */
  mode: 'incremental' | 'window' | 'initial';
  groupsRecomputed: number;
  /**
   * A stateful rollup's incremental run (delta-state.ts): of the groups it changed, those it brought
   * up to date by applying the changed rows to their state, without reading their other rows.
   */
  groupsApplied?: number;
  rowsWritten: number;
  rowsDeleted: number;
  durationMs: number;
  /** Incremental and initial: the new horizon (a transaction id). */
  horizon?: string;
  /** Window: the buckets recomputed, widened to whole buckets and clipped to unfrozen ones. */
  window?: { start: string; end: string };
  /** Incremental on Citus: what each node's refresh did (citus-refresh.ts). */
  nodes?: NodeRefreshResult[];
  /** Incremental: partitions attached or detached since the last run, whose ranges it recomputed. */
  partitions?: PartitionChange[];
  /**
   * After a run that found partitions without the change-capture statement triggers: how many
   * triggers it then put on them, or why it could not (partition-changes.ts).
   */
  partitionCapture?: { created: number } | { error: string };
}

export interface RefreshOptions {
  timezone: string;
  mode: RefreshMode;
  statementTimeoutMs?: number;
  lockTimeoutMs?: number;
  /**
   * Memory for the sorts of one refresh (PostgreSQL work_mem, e.g. '64MB'): the percentiles and
   * distinct counts sort each group; at the server's default (4MB) a backfill spills to disk.
   */
  workMem?: string;
  /** Aborting cancels the running statement; the transaction rolls back and nothing is written. */
  signal?: AbortSignal;
}

function count(rows: Array<Record<string, unknown>>, column: string): number {
  return Number(rows[0]?.[column] ?? 0);
}

/** Recomputes the buckets of [start, end), widened to whole buckets and clipped to unfrozen ones. */
async function recomputeWindow(
  client: PoolClient,
  sql: RollupSql,
  range: { start: Date | string; end: Date | string },
  timezone: string,
  cutoff: Date | string,
): Promise<{ lo: string; hi: string; groups: number; written: number; deleted: number }> {
  const { rows } = await client.query<{ lo: string; hi: string; nonempty: boolean }>(
    `SELECT to_json(lo) #>> '{}' AS lo, to_json(hi) #>> '{}' AS hi, lo < hi AS nonempty FROM (${sql.alignWindow}) w`,
    [range.start, range.end, timezone, cutoff],
  );
  const lo = rows[0]?.lo ?? '-infinity';
  const hi = rows[0]?.hi ?? 'infinity';
  if (rows[0]?.nonempty !== true) return { lo, hi, groups: 0, written: 0, deleted: 0 };
  const { rows: counts } = await client.query(sql.refreshWindow, [lo, hi, timezone]);
  return {
    lo,
    hi,
    groups: count(counts, 'groups'),
    written: count(counts, 'written'),
    deleted: count(counts, 'deleted'),
  };
}

/**
 * Brings one rollup up to date (incremental) or recomputes a window of it, in one REPEATABLE READ
 * transaction: readers see the old rows or the new, never half a bucket.
 *
 * Serialized per rollup by a session advisory lock taken *before* the transaction starts, so that
 * the snapshot is taken after the previous run committed its horizon. The engine takes no lock on
 * source tables beyond the ACCESS SHARE of reading them: the application's writers never wait.
 */
export async function refreshRollup(
  pool: Pool,
  def: RollupDefinition,
  options: RefreshOptions,
): Promise<RefreshResult> {
  const sql = rollupSql(def);
  const started = performance.now();
  // Partitions found without the statement triggers get them after the run (partition-changes.ts).
  let uncaptured: string[] = [];
  // One round trip for the settings with the state (and one for the lock, openRollupSession).
  const refreshed = await inRollupTransaction(pool, def, 'refresh', options, async (client) => {
    const { rows: stateRows } = await client.query<
      {
        horizon: string | null;
        snapshot: string | null;
        snapshot_xid: string | null;
        whole_since_snapshot: boolean;
        cutoff: Date | null;
        next: string;
        nextSnapshot: string;
        citus: boolean;
        source_partitions: RecordedPartitions | null;
        partitions_key: string;
      } & IdentityStateColumns
    >(
      // $1 rollup, $2 statement timeout, $3 work_mem. Frozen before the later of the source's
      // retention watermark and the rollup's own (an expired hourly rollup: cleanupOldData,
      // rollupWatermarkKey). The settings apply from the next statement on.
      //
      // synchronous_commit off: the commit does not wait for the WAL flush (on a new hour that
      // wait was a quarter of the run). What a crash can lose is a whole refresh, never part of
      // one: its rows and its horizon commit together, so the next run recomputes the same groups
      // from the older horizon. Anything that acts on a refresh (the change-log prune, the run's
      // and the backfill window's records) commits synchronously after it, which flushes it too.
      //
      // jit off. An incremental run's estimates of the changed groups are guesses (a MATERIALIZED
      // CTE of unknown size), and on a source partitioned by time its plan holds a scan per
      // partition: above jit_above_cost PostgreSQL compiled 427 functions for a run that changed
      // nothing (212 ms of 240 on 30 daily partitions, where the run takes 2 ms without). A window
      // (backfill, rebuild) ran slower compiled than not on the 10M-row bench set: the credit
      // rollup's 30 days 20.1-21.8 s with JIT against 14.3 s without, 7 days 6.2-7.3 against
      // 4.8-5.5 s, the executions' 7 days 5.8-7.3 against 5.3-5.4 s (EXPLAIN ANALYZE, TIMING OFF).
      `SELECT set_config('statement_timeout', $2, true), set_config('work_mem', $3, true),
              set_config('synchronous_commit', 'off', true), set_config('jit', 'off', true),
              s.horizon::text AS horizon, s.snapshot::text AS snapshot, s.snapshot_xid::text AS snapshot_xid,
              coalesce((SELECT pg_visible_in_snapshot(w.since, s.snapshot) FROM aggjobs.whole_capture w
                        WHERE w.source_table = s.source_table), false) AS whole_since_snapshot,
              (SELECT max(w.cutoff) FROM aggjobs.retention_watermarks w
               WHERE w.source_table IN (s.source_table, 'analytics.' || s.rollup)) AS cutoff,
              pg_snapshot_xmin(pg_current_snapshot())::text AS next, pg_current_snapshot()::text AS "nextSnapshot",
              EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') AS citus,
              s.source_partitions, ${partitionKeySql('s.source_table')} AS partitions_key,
              ${identityStateSelect}
       FROM aggjobs.rollup_state s
       WHERE s.rollup = $1`,
      [def.name, String(options.statementTimeoutMs ?? 600_000), options.workMem ?? '64MB'],
    );
    const state = stateRows[0];
    if (state === undefined) throw new Error(`rollup ${def.name} is not installed: run aggjobs migrate`);
    // A distributed source is refreshed per node (citus-refresh.ts), on the shards where its shard
    // map places them; the map (null: not a Citus table) only where Citus is installed.
    const onNodes =
      options.mode.kind === 'incremental' && state.citus ? await shardPairsByNode(client, def) : null;
    // Before anything is written: were the rows built by this zone, definition and cluster?
    // A rollup never refreshed incrementally (no snapshot) is recomputed whole by this run, as by
    // a rebuild, and records what it runs with.
    const initialRun = options.mode.kind === 'incremental' && state.snapshot === null;
    const identity = identityOf(def, options.timezone, state);
    if (!initialRun && identity.changes.length > 0)
      throw new RollupRebuildRequiredError(def.name, identity.changes);
    const cutoff: Date | string = state.cutoff ?? '-infinity';
    let result: Omit<RefreshResult, 'durationMs'>;
    // The source's partitions, when this run read them (partition-changes.ts); recorded with its snapshot.
    let partitions: RecordedPartitions | undefined;

    if (onNodes !== null) {
      const done = await refreshOnNodes(pool, onNodes, def, {
        timezone: options.timezone,
        cutoff,
        initial: initialRun,
        statementTimeoutMs: options.statementTimeoutMs ?? 600_000,
        lockTimeoutMs: options.lockTimeoutMs ?? 30_000,
        workMem: options.workMem ?? '64MB',
        signal: options.signal,
      });
      result = {
        rollup: def.name,
        mode: initialRun ? 'initial' : 'incremental',
        groupsRecomputed: done.groupsRecomputed,
        rowsWritten: done.rowsWritten,
        rowsDeleted: done.rowsDeleted,
        horizon: state.next,
        nodes: done.nodes,
      };
    } else if (options.mode.kind === 'incremental' && state.horizon !== null && state.snapshot !== null) {
      // Partitions attached or detached since the last run: their ranges first (partition-changes.ts).
      // A state from before migration 000015 records them without comparing.
      let moved: PartitionChange[] = [];
      if (partitionsToRead(state.source_partitions, state.partitions_key)) {
        partitions = await readSourcePartitions(client, def);
        if (state.source_partitions !== null)
          moved = await partitionChanges(
            client,
            state.source_partitions.partitions,
            partitions.partitions,
            state.snapshot,
            state.cutoff,
          );
      }
      const done = { groups: 0, written: 0, deleted: 0 };
      for (const change of moved) {
        const w = await recomputeWindow(client, sql, change, options.timezone, cutoff);
        done.groups += w.groups;
        done.written += w.written;
        done.deleted += w.deleted;
      }
      // A stateful rollup applies the changed rows to its groups' state (delta-state.ts).
      const params = [state.horizon, options.timezone, def.source, cutoff, state.snapshot];
      const { rows } =
        def.deltaState === true
          ? await client.query(refreshByDeltaSql(def), [
              ...params,
              state.snapshot_xid,
              state.whole_since_snapshot,
            ])
          : await client.query(sql.refreshChanged, params);
      result = {
        rollup: def.name,
        mode: 'incremental',
        groupsRecomputed: done.groups + count(rows, 'groups'),
        rowsWritten: done.written + count(rows, 'written'),
        rowsDeleted: done.deleted + count(rows, 'deleted'),
        ...(def.deltaState === true ? { groupsApplied: count(rows, 'applied') } : {}),
        horizon: state.next,
        ...(moved.length > 0 ? { partitions: moved } : {}),
      };
    } else {
      const mode = options.mode;
      const initial = mode.kind === 'incremental';
      const range = mode.kind === 'window' ? mode : { start: '-infinity', end: 'infinity' };
      if (initial) partitions = await readSourcePartitions(client, def);
      const w = await recomputeWindow(client, sql, range, options.timezone, cutoff);
      result = {
        rollup: def.name,
        mode: initial ? 'initial' : 'window',
        groupsRecomputed: w.groups,
        rowsWritten: w.written,
        rowsDeleted: w.deleted,
        ...(initial ? { horizon: state.next } : { window: { start: w.lo, end: w.hi } }),
      };
    }
    uncaptured = partitions?.partitions.filter((p) => p.captured === null).map((p) => p.name) ?? [];
    const durationMs = Math.round(performance.now() - started);
    await client.query(
      `UPDATE aggjobs.rollup_state
       SET horizon = coalesce($2::xid8, horizon),
           snapshot = CASE WHEN $2::xid8 IS NULL THEN snapshot ELSE $4::pg_snapshot END,
           snapshot_xid = CASE WHEN $2::xid8 IS NULL THEN snapshot_xid ELSE pg_current_xact_id() END,
           horizon_at = CASE WHEN $2::xid8 IS NULL THEN horizon_at ELSE now() END,
           source_partitions = coalesce($5::jsonb, source_partitions),
           last_refresh_at = now(), last_result = $3
       WHERE rollup = $1`,
      [
        def.name,
        result.horizon ?? null,
        JSON.stringify({ ...result, durationMs }),
        state.nextSnapshot,
        partitions === undefined ? null : JSON.stringify(partitions),
      ],
    );
    // Recorded by a run that read the sources from a snapshot on (incremental, initial) when the
    // state lacks it, or after an initial run (which recomputed every unfrozen bucket): the first
    // run, and the first after an upgrade to migration 000009 (README "What built a rollup's rows").
    if (result.horizon !== undefined && (identity.unrecorded || initialRun))
      await client.query(recordIdentitySql, recordIdentityParams(def.name, identity.current));
    return { ...result, durationMs };
  });
  if (uncaptured.length === 0) return refreshed;
  const made = await capturePartitions(pool, def.source, uncaptured);
  return { ...refreshed, partitionCapture: typeof made === 'number' ? { created: made } : { error: made } };
}

/**
 * Forgets change-log entries that every rollup of `source` and every materialized view has folded
 * in. Safe at any time: a refresh in progress only reads entries at or above its own horizon, which
 * is at or above the minimum. A rollup that has never run keeps nothing back (it recomputes all).
 */
export async function pruneChangeLog(pool: Pool, source: string): Promise<number> {
  const { rowCount } = await pool.query(
    `DELETE FROM aggjobs.change_log
     WHERE source_table = $1
       AND xid < (SELECT min(h) FROM (
             SELECT horizon AS h FROM aggjobs.rollup_state WHERE source_table = $1 AND horizon IS NOT NULL
             UNION ALL
             SELECT horizon FROM aggjobs.view_refreshes) horizons)`,
    [source],
  );
  return rowCount ?? 0;
}

/**
 * Forgets change-log entries of tables no rollup reads. A partition detached from a source keeps
 * aggjobs' statement triggers, and logs the deletes and updates made to it under its own name (the
 * partition root of a detached table is itself): no refresh reads them (a partition attached again
 * has both its ranges recomputed, partition-changes.ts) and pruneChangeLog, by source, never reaches
 * them. Reads the whole log: run daily (cleanup_old_data), not after each refresh. A rollup
 * installed meanwhile loses nothing: its first run recomputes all.
 */
export async function pruneUnreadChangeLog(pool: Pool): Promise<number> {
  const { rowCount } = await pool.query(
    `DELETE FROM aggjobs.change_log l
     WHERE NOT EXISTS (SELECT 1 FROM aggjobs.rollup_state s WHERE s.source_table = l.source_table)`,
  );
  return rowCount ?? 0;
}

/**
 * Forgets the truncations (migration 000013) that no rollup can be refused for any more: every
 * rollup of the source has stored a snapshot that sees the TRUNCATE (it was rebuilt, or first built,
 * after it), or has none (it recomputes all on its next run). A refresh in progress stores a snapshot
 * newer than the one it replaces, so a truncation seen by the stored one is seen by the next.
 * Truncations of a table no rollup reads go too, as pruneUnreadChangeLog's entries do.
 */
export async function pruneSeenTruncations(pool: Pool): Promise<number> {
  const { rowCount } = await pool.query(
    `DELETE FROM aggjobs.source_truncations t
     WHERE NOT EXISTS (SELECT 1 FROM aggjobs.rollup_state s
                       WHERE s.source_table = t.source_table AND s.snapshot IS NOT NULL
                         AND NOT pg_visible_in_snapshot(t.xid, s.snapshot))`,
  );
  return rowCount ?? 0;
}
