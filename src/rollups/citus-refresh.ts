import type pg from 'pg';
import type { Pool, Queryable } from '../db/index.ts';
import {
  connectPooledNode,
  nodeName,
  nodeNotMigratedError,
  shardPairsByNode,
  type NodeShards,
  type ShardPair,
} from './citus-nodes.ts';
import type { RollupDefinition } from './definition.ts';
import { rollupSql, type RollupSql } from './rollup-sql.ts';

/**
 * The incremental refresh of a rollup whose source is distributed by Citus: one refresh per node
 * that holds shards, run in parallel, each exact for its shards (docs/scaling.md "Per-node change
 * capture").
 *
 * On each node, in one REPEATABLE READ transaction on that node (its snapshot is the node's):
 * - every co-located (source shard, rollup shard) pair whose placements the node's previous refresh
 *   covered is brought up to date as on one server: the source rows stamped by transactions not
 *   visible in the node's previous snapshot and the groups in the node's change log since, their
 *   groups recomputed from the shard's rows;
 * - a pair the node's previous refresh did not cover (the first run, or a shard moved here by
 *   `citus_move_shard_placement` or a rebalance since: a new placement id) is recomputed whole: its
 *   rows carry stamps from another node's transaction ids, and its deletes were logged there;
 * - the node's state (snapshot, horizon, placements) is written with the rows.
 * The nodes commit once every node has done its work: a node that is down or fails makes the
 * refresh fail before any node commits, naming the node. Readers see each node's refresh at once:
 * its rollup rows and its state commit in one local transaction on that node.
 */

export interface NodeRefreshResult {
  node: string;
  shards: number;
  /** Shards recomputed whole: first run on the node, or moved here since its last refresh. */
  shardsRecomputed: number;
  groupsRecomputed: number;
  rowsWritten: number;
  rowsDeleted: number;
  /** The node's new horizon, a transaction id of that node. */
  horizon: string;
}

export interface CitusRefreshResult {
  groupsRecomputed: number;
  rowsWritten: number;
  rowsDeleted: number;
  nodes: NodeRefreshResult[];
}

export interface CitusRefreshOptions {
  timezone: string;
  cutoff: Date | string;
  /** The coordinator's rollup state has no snapshot: recompute every shard whole, ignoring node states. */
  initial: boolean;
  statementTimeoutMs: number;
  lockTimeoutMs: number;
  workMem: string;
  signal?: AbortSignal;
}

/** Is `source` a distributed table of this Citus database? (Called only where Citus is installed.) */
export async function isDistributed(db: Queryable, source: string): Promise<boolean> {
  const { rows } = await db.query<{ distributed: boolean }>(
    'SELECT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = to_regclass($1)) AS distributed',
    [source],
  );
  return rows[0]?.distributed === true;
}

function count(rows: Array<Record<string, unknown>>, column: string): number {
  return Number(rows[0]?.[column] ?? 0);
}

/**
 * The rollup's SQL for one pair of shards on their node: the shards' names for the tables', and the
 * node's change log for the coordinator's.
 */
function shardSql(def: RollupDefinition, pair: ShardPair): RollupSql {
  const sql = rollupSql({ ...def, source: pair.source, name: pair.target.slice('analytics.'.length) });
  const parts = sql.refreshChanged.split('aggjobs.change_log');
  if (parts.length !== 2) throw new Error('rollup SQL: expected one reference to aggjobs.change_log');
  return { ...sql, refreshChanged: parts.join('aggjobs_node.change_log') };
}

interface NodeState {
  snapshot: string;
  horizon: string;
  placements: string[];
}

/** Runs one node's refresh up to (not including) its commit; the transaction stays open. */
async function refreshNode(
  client: pg.PoolClient,
  def: RollupDefinition,
  shards: NodeShards,
  options: CitusRefreshOptions,
): Promise<NodeRefreshResult> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  // The first statement takes the node's snapshot: every write visible in it is folded in by this
  // refresh, and the next refresh takes the writes not visible in it.
  const { rows: stateRows } = await client.query<{
    ready: boolean;
    next: string;
    nextSnapshot: string;
  }>(
    `SELECT set_config('statement_timeout', $1, true), set_config('work_mem', $2, true),
            set_config('lock_timeout', $3, true), set_config('synchronous_commit', 'off', true),
            to_regclass('aggjobs_node.rollup_state') IS NOT NULL AS ready,
            pg_snapshot_xmin(pg_current_snapshot())::text AS next, pg_current_snapshot()::text AS "nextSnapshot"`,
    [String(options.statementTimeoutMs), options.workMem, String(options.lockTimeoutMs)],
  );
  const head = stateRows[0];
  if (head === undefined || !head.ready) throw nodeNotMigratedError(nodeName(shards.node));
  const { rows: previousRows } = await client.query<NodeState>(
    `SELECT snapshot::text AS snapshot, horizon::text AS horizon, placements::text[] AS placements
     FROM aggjobs_node.rollup_state WHERE rollup = $1`,
    [def.name],
  );
  const previous = options.initial ? undefined : previousRows[0];
  const covered = new Set(previous?.placements ?? []);
  const result: NodeRefreshResult = {
    node: nodeName(shards.node),
    shards: shards.pairs.length,
    shardsRecomputed: 0,
    groupsRecomputed: 0,
    rowsWritten: 0,
    rowsDeleted: 0,
    horizon: head.next,
  };
  let aligned: { lo: string; hi: string; nonempty: boolean } | undefined;
  for (const pair of shards.pairs) {
    const sql = shardSql(def, pair);
    let rows: Array<Record<string, unknown>>;
    if (previous !== undefined && pair.placements.every((p) => covered.has(p))) {
      ({ rows } = await client.query(sql.refreshChanged, [
        previous.horizon,
        options.timezone,
        pair.source,
        options.cutoff,
        previous.snapshot,
      ]));
    } else {
      result.shardsRecomputed += 1;
      if (aligned === undefined) {
        const { rows: window } = await client.query<{ lo: string; hi: string; nonempty: boolean }>(
          `SELECT to_json(lo) #>> '{}' AS lo, to_json(hi) #>> '{}' AS hi, lo < hi AS nonempty FROM (${sql.alignWindow}) w`,
          ['-infinity', 'infinity', options.timezone, options.cutoff],
        );
        aligned = window[0] ?? { lo: '-infinity', hi: 'infinity', nonempty: false };
      }
      if (!aligned.nonempty) continue;
      ({ rows } = await client.query(sql.refreshWindow, [aligned.lo, aligned.hi, options.timezone]));
    }
    result.groupsRecomputed += count(rows, 'groups');
    result.rowsWritten += count(rows, 'written');
    result.rowsDeleted += count(rows, 'deleted');
  }
  await client.query(
    `INSERT INTO aggjobs_node.rollup_state (rollup, source_table, snapshot, horizon, placements, refreshed_at, last_result)
     VALUES ($1, $2, $3::pg_snapshot, $4::xid8, $5::bigint[], now(), $6)
     ON CONFLICT (rollup) DO UPDATE SET source_table = EXCLUDED.source_table, snapshot = EXCLUDED.snapshot,
       horizon = EXCLUDED.horizon, placements = EXCLUDED.placements, refreshed_at = EXCLUDED.refreshed_at,
       last_result = EXCLUDED.last_result`,
    [
      def.name,
      def.source,
      head.nextSnapshot,
      head.next,
      shards.pairs.flatMap((p) => p.placements),
      JSON.stringify(result),
    ],
  );
  return result;
}

/**
 * Forgets a node's change-log entries for `def`'s source shards that every rollup of that source
 * on the node has folded in. Its own transaction, after the refresh committed.
 */
async function pruneNodeChangeLog(
  client: pg.Client,
  def: RollupDefinition,
  shards: NodeShards,
): Promise<void> {
  await client.query(
    `DELETE FROM aggjobs_node.change_log
     WHERE source_table = ANY ($1::text[])
       AND xid < (SELECT min(horizon) FROM aggjobs_node.rollup_state WHERE source_table = $2)`,
    [shards.pairs.map((p) => p.source), def.source],
  );
}

/**
 * The per-node incremental refresh of `def` (see the top of this file). Called by refreshRollup,
 * which holds the rollup's advisory lock on the coordinator for its duration: refreshes of one
 * rollup do not overlap, so each node's snapshot is taken after the previous refresh committed.
 */
export async function refreshOnNodes(
  pool: Pool,
  coordinator: Queryable,
  def: RollupDefinition,
  options: CitusRefreshOptions,
): Promise<CitusRefreshResult> {
  const what = `incremental refresh of ${def.name}`;
  const nodes = await shardPairsByNode(coordinator, def);
  const clients = new Map<string, pg.PoolClient>();
  // A client goes back to its pool only after its node committed and pruned; any other way (an
  // error, an abort) it is closed, which rolls back what it had open on its node.
  const settled = new Set<string>();
  let failure: Error | undefined;
  const releaseAll = (): void => {
    for (const [name, c] of clients) {
      if (settled.has(name)) continue;
      settled.add(name);
      c.release(failure);
    }
  };
  const onAbort = (): void => {
    failure ??= new Error(`${what} aborted`);
    releaseAll();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    // Every node connected before any work: a node that is down fails the run at once.
    const connected = await Promise.allSettled(
      nodes.map(async (n) => {
        const client = await connectPooledNode(pool, n.node, `aggjobs refresh`, what);
        clients.set(nodeName(n.node), client);
      }),
    );
    const down = connected.find((c): c is PromiseRejectedResult => c.status === 'rejected');
    if (down !== undefined) throw down.reason;
    const client = (n: NodeShards): pg.PoolClient => {
      const c = clients.get(nodeName(n.node));
      if (c === undefined) throw new Error(`no connection to ${nodeName(n.node)}`);
      return c;
    };
    const done = await Promise.allSettled(
      nodes.map(async (n) => {
        try {
          return await refreshNode(client(n), def, n, options);
        } catch (error) {
          throw new Error(`${what} failed on Citus node ${nodeName(n.node)}: ${(error as Error).message}`, {
            cause: error,
          });
        }
      }),
    );
    const failed = done.find((d): d is PromiseRejectedResult => d.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const results = done.map((d) => (d as PromiseFulfilledResult<NodeRefreshResult>).value);
    // Every node did its work: commit each. A node lost between two commits keeps its previous
    // state with its previous rows (they commit together), and the next run recomputes its changes.
    for (const n of nodes) await client(n).query('COMMIT');
    await Promise.all(nodes.map((n) => pruneNodeChangeLog(client(n), def, n)));
    const result = {
      groupsRecomputed: results.reduce((s, r) => s + r.groupsRecomputed, 0),
      rowsWritten: results.reduce((s, r) => s + r.rowsWritten, 0),
      rowsDeleted: results.reduce((s, r) => s + r.rowsDeleted, 0),
      nodes: results,
    };
    releaseAll();
    return result;
  } catch (error) {
    failure ??= error instanceof Error ? error : new Error(String(error));
    throw error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    failure ??= new Error(`${what}: connection left unsettled`);
    releaseAll();
  }
}
