import { inTransaction, releaseClient, type Pool, type PoolClient } from '../db/index.ts';
import type { RollupDefinition } from './definition.ts';
import { RollupRebuildRequiredError } from './build-identity.ts';
import { isDistributed, refreshOnNodes, type NodeRefreshResult } from './citus-refresh.ts';
import {
  identityOf,
  identityStateSelect,
  recordIdentityParams,
  recordIdentitySql,
  type IdentityStateColumns,
} from './identity-state.ts';
import { rollupSql } from './rollup-sql.ts';

export type RefreshMode = { kind: 'incremental' } | { kind: 'window'; start: Date; end: Date };

/** What one refresh of one rollup did: the runtime's task results are built from these. */
export interface RefreshResult {
  rollup: string;
  /** `initial`: an incremental refresh of a rollup that had never run, so all of history was recomputed. */
  mode: 'incremental' | 'window' | 'initial';
  groupsRecomputed: number;
  rowsWritten: number;
  rowsDeleted: number;
  durationMs: number;
  /** Incremental and initial: the new horizon (a transaction id). */
  horizon?: string;
  /** Window: the buckets recomputed, widened to whole buckets and clipped to unfrozen ones. */
  window?: { start: string; end: string };
  /** Incremental on Citus: what each node's refresh did (citus-refresh.ts). */
  nodes?: NodeRefreshResult[];
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

/** Thrown when a refresh was aborted through its signal (soft time limit, revoke). */
export class RefreshAbortedError extends Error {
  override readonly name = 'RefreshAbortedError';
}

async function cancelOnAbort(
  pool: Pool,
  client: PoolClient,
  signal: AbortSignal | undefined,
): Promise<() => void> {
  if (signal === undefined) return () => undefined;
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const pid = rows[0]?.pid;
  const onAbort = (): void => {
    void pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

function count(rows: Array<Record<string, unknown>>, column: string): number {
  return Number(rows[0]?.[column] ?? 0);
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
  // One round trip for the settings with the state (and one for the lock, openRollupSession).
  return await inRollupTransaction(pool, def, 'refresh', options, async (client) => {
    const { rows: stateRows } = await client.query<
      {
        horizon: string | null;
        snapshot: string | null;
        cutoff: Date | null;
        next: string;
        nextSnapshot: string;
        citus: boolean;
      } & IdentityStateColumns
    >(
      // $1 rollup, $2 statement timeout, $3 work_mem, $4 incremental. Frozen before the later of the source's
      // retention watermark and the rollup's own (an expired hourly rollup: cleanupOldData,
      // rollupWatermarkKey). The settings apply from the next statement on.
      //
      // synchronous_commit off: the commit does not wait for the WAL flush (on a new hour that
      // wait was a quarter of the run). What a crash can lose is a whole refresh, never part of
      // one: its rows and its horizon commit together, so the next run recomputes the same groups
      // from the older horizon. Anything that acts on a refresh (the change-log prune, the run's
      // and the backfill window's records) commits synchronously after it, which flushes it too.
      //
      // $4: jit off for an incremental run. Its estimates of the changed groups are guesses (a
      // MATERIALIZED CTE of unknown size), and on a source partitioned by time its plan holds a
      // scan per partition: above jit_above_cost PostgreSQL compiled 427 functions for a run that
      // changed nothing (212 ms of 240 on 30 daily partitions, where the run takes 2 ms without).
      `SELECT set_config('statement_timeout', $2, true), set_config('work_mem', $3, true),
              set_config('synchronous_commit', 'off', true),
              set_config('jit', CASE WHEN $4 THEN 'off' ELSE current_setting('jit') END, true),
              s.horizon::text AS horizon, s.snapshot::text AS snapshot,
              (SELECT max(w.cutoff) FROM aggjobs.retention_watermarks w
               WHERE w.source_table IN (s.source_table, 'analytics.' || s.rollup)) AS cutoff,
              pg_snapshot_xmin(pg_current_snapshot())::text AS next, pg_current_snapshot()::text AS "nextSnapshot",
              EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') AS citus,
              ${identityStateSelect}
       FROM aggjobs.rollup_state s
       WHERE s.rollup = $1`,
      [
        def.name,
        String(options.statementTimeoutMs ?? 600_000),
        options.workMem ?? '64MB',
        options.mode.kind === 'incremental',
      ],
    );
    const state = stateRows[0];
    if (state === undefined) throw new Error(`rollup ${def.name} is not installed: run aggjobs migrate`);
    // A distributed source is refreshed per node (citus-refresh.ts); its catalog query only where
    // Citus is installed.
    const onNodes =
      options.mode.kind === 'incremental' && state.citus && (await isDistributed(client, def.source));
    // Before anything is written: were the rows built by this zone, definition and cluster?
    // A rollup never refreshed incrementally (no snapshot) is recomputed whole by this run, as by
    // a rebuild, and records what it runs with.
    const initialRun = options.mode.kind === 'incremental' && state.snapshot === null;
    const identity = identityOf(def, options.timezone, state);
    if (!initialRun && identity.changes.length > 0)
      throw new RollupRebuildRequiredError(def.name, identity.changes);
    const cutoff: Date | string = state.cutoff ?? '-infinity';
    let result: Omit<RefreshResult, 'durationMs'>;

    if (onNodes) {
      const done = await refreshOnNodes(pool, client, def, {
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
      const { rows } = await client.query(sql.refreshChanged, [
        state.horizon,
        options.timezone,
        def.source,
        cutoff,
        state.snapshot,
      ]);
      result = {
        rollup: def.name,
        mode: 'incremental',
        groupsRecomputed: count(rows, 'groups'),
        rowsWritten: count(rows, 'written'),
        rowsDeleted: count(rows, 'deleted'),
        horizon: state.next,
      };
    } else {
      const mode = options.mode;
      const initial = mode.kind === 'incremental';
      const [start, end] = mode.kind === 'window' ? [mode.start, mode.end] : ['-infinity', 'infinity'];
      const { rows } = await client.query<{ lo: string; hi: string; nonempty: boolean }>(
        `SELECT to_json(lo) #>> '{}' AS lo, to_json(hi) #>> '{}' AS hi, lo < hi AS nonempty FROM (${sql.alignWindow}) w`,
        [start, end, options.timezone, cutoff],
      );
      const lo = rows[0]?.lo ?? '-infinity';
      const hi = rows[0]?.hi ?? 'infinity';
      let groups = 0;
      let written = 0;
      let deleted = 0;
      if (rows[0]?.nonempty === true) {
        const { rows: counts } = await client.query(sql.refreshWindow, [lo, hi, options.timezone]);
        groups = count(counts, 'groups');
        written = count(counts, 'written');
        deleted = count(counts, 'deleted');
      }
      result = {
        rollup: def.name,
        mode: initial ? 'initial' : 'window',
        groupsRecomputed: groups,
        rowsWritten: written,
        rowsDeleted: deleted,
        ...(initial ? { horizon: state.next } : { window: { start: lo, end: hi } }),
      };
    }
    const durationMs = Math.round(performance.now() - started);
    await client.query(
      `UPDATE aggjobs.rollup_state
       SET horizon = coalesce($2::xid8, horizon),
           snapshot = CASE WHEN $2::xid8 IS NULL THEN snapshot ELSE $4::pg_snapshot END,
           horizon_at = CASE WHEN $2::xid8 IS NULL THEN horizon_at ELSE now() END,
           last_refresh_at = now(), last_result = $3
       WHERE rollup = $1`,
      [def.name, result.horizon ?? null, JSON.stringify({ ...result, durationMs }), state.nextSnapshot],
    );
    // Recorded by a run that read the sources from a snapshot on (incremental, initial) when the
    // state lacks it, or after an initial run (which recomputed every unfrozen bucket): the first
    // run, and the first after an upgrade to migration 000009 (README "What built a rollup's rows").
    if (result.horizon !== undefined && (identity.unrecorded || initialRun))
      await client.query(recordIdentitySql, recordIdentityParams(def.name, identity.current));
    return { ...result, durationMs };
  });
}

interface RollupSession {
  readonly client: PoolClient;
  /** Stops cancelling on the signal and gives the session back (releaseRollupSession). */
  release(): Promise<void>;
}

/**
 * Runs `fn` in a REPEATABLE READ transaction on the session of a refresh or rebuild of `def`
 * (openRollupSession): committed when `fn` returns, rolled back when it throws. A throw after
 * `signal` aborted is a RefreshAbortedError saying nothing was written.
 */
export async function inRollupTransaction<T>(
  pool: Pool,
  def: RollupDefinition,
  what: 'refresh' | 'rebuild',
  options: { signal?: AbortSignal; lockTimeoutMs?: number },
  fn: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const session = await openRollupSession(pool, def, what, options);
  try {
    return await inTransaction(session.client, fn, { isolation: 'repeatable read' });
  } catch (error) {
    if (options.signal?.aborted === true) {
      throw new RefreshAbortedError(`${what} of ${def.name} aborted: nothing was written`, { cause: error });
    }
    throw error;
  } finally {
    await session.release();
  }
}

/**
 * Opens the session of a refresh or rebuild of `def`: a pooled connection, cancelled when `signal`
 * aborts, holding the rollup's advisory lock (waiting at most lockTimeoutMs). The lock and the lock
 * timeout take one round trip: on a new hour the statements around a refresh cost as much as the
 * refresh itself (bench/report.md, Engine). On failure the session is given back before the throw.
 */
async function openRollupSession(
  pool: Pool,
  def: RollupDefinition,
  what: 'refresh' | 'rebuild',
  options: { signal?: AbortSignal; lockTimeoutMs?: number },
): Promise<RollupSession> {
  const client = await pool.connect();
  let releaseCancel = (): void => undefined;
  let locked = false;
  let previousLockTimeout: string | undefined;
  const release = async (): Promise<void> => {
    releaseCancel();
    await releaseRollupSession(client, def.name, locked, previousLockTimeout);
  };
  try {
    releaseCancel = await cancelOnAbort(pool, client, options.signal);
    if (options.signal?.aborted === true) throw new RefreshAbortedError(`${what} of ${def.name} aborted`);
    // $1 lock timeout, $2 rollup
    const { rows } = await client.query<{ previous: string }>(
      `SELECT current_setting('lock_timeout') AS previous, set_config('lock_timeout', $1, false),
              pg_advisory_lock(hashtext('aggjobs.rollup'), hashtext($2))`,
      [String(options.lockTimeoutMs ?? 30_000), def.name],
    );
    previousLockTimeout = rows[0]?.previous;
    locked = true;
    return { client, release };
  } catch (error) {
    await release();
    if (options.signal?.aborted === true && !(error instanceof RefreshAbortedError)) {
      throw new RefreshAbortedError(`${what} of ${def.name} aborted: nothing was written`, { cause: error });
    }
    throw error;
  }
}

/**
 * Gives back the session of a refresh or rebuild: unlocks the rollup's advisory lock (when it was
 * taken) and sets the lock timeout back to `previousLockTimeout` (the session's value before the
 * refresh set its own), or resets it when that is unknown. One round trip. A session that cannot
 * (killed, server gone) is closed, not pooled.
 */
async function releaseRollupSession(
  client: PoolClient,
  rollup: string,
  locked: boolean,
  previousLockTimeout?: string,
): Promise<void> {
  let broken: unknown;
  const keep = (error: unknown): void => {
    broken ??= error;
  };
  if (previousLockTimeout === undefined) {
    if (locked)
      await client
        .query("SELECT pg_advisory_unlock(hashtext('aggjobs.rollup'), hashtext($1))", [rollup])
        .catch(keep);
    await client.query('RESET lock_timeout').catch(keep);
  } else {
    // $1 rollup, $2 whether it was locked, $3 the lock timeout to restore
    await client
      .query(
        `SELECT CASE WHEN $2::boolean THEN pg_advisory_unlock(hashtext('aggjobs.rollup'), hashtext($1)) END,
                set_config('lock_timeout', $3, false)`,
        [rollup, locked, previousLockTimeout],
      )
      .catch(keep);
  }
  releaseClient(client, broken);
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
