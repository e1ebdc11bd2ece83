import { createHash } from 'node:crypto';
import type pg from 'pg';
import { SqlState, sqlStateOf, type Pool } from '../db/index.ts';
import {
  connectPooledNode,
  nodeName,
  nodeNotMigratedError,
  type NodeShards,
  type ShardPair,
} from './citus-nodes.ts';
import type { RollupDefinition } from './definition.ts';
import { rollupSql, type RollupSql } from './rollup-sql.ts';
import { literal } from './sql-identifier.ts';

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
 *   rows carry stamps from another node's transaction ids, and its deletes were logged there; so is
 *   a pair whose source shard was truncated since (no trigger sees the rows a TRUNCATE removes);
 * - the node's state (snapshot, horizon, placements) is written with the rows.
 * The nodes commit, all at once, when every node has done its work: a node that is down or fails
 * makes the refresh fail before any node commits, naming the node. Readers see each node's refresh
 * at once: its rollup rows and its state commit in one local transaction on that node.
 */

export interface NodeRefreshResult {
  node: string;
  shards: number;
  /** Shards recomputed whole: first run on the node, or moved here or truncated since its last refresh. */
  shardsRecomputed: number;
  groupsRecomputed: number;
  rowsWritten: number;
  rowsDeleted: number;
  /** The node's new horizon, a transaction id of that node. */
  horizon: string;
  /** The node's work, from its transaction's start to its commit (excluded). */
  durationMs: number;
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

/** What a node's refresh read in its first statement: its snapshot, and how each pair is refreshed. */
interface NodeHead {
  next: string;
  nextSnapshot: string;
  /** Per shard pair, in order: brought up to date from the node's previous refresh (else recomputed whole). */
  incremental: boolean[];
}

/** The results of a message of several statements (one round trip), one per statement. */
async function messages(client: pg.PoolClient, text: string): Promise<pg.QueryResult[]> {
  const result: pg.QueryResult | pg.QueryResult[] = await client.query(text);
  return Array.isArray(result) ? result : [result];
}

const lit = (value: string | Date): string => literal(value instanceof Date ? value.toISOString() : value);

/** A name for a prepared statement of `text`, the same on every connection. */
const statementName = (text: string): string =>
  `aggjobs_refresh_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;

/**
 * The statements each node connection has prepared, by name. A connection that fails is closed
 * (refreshOnNodes), so a statement recorded here exists on its connection.
 */
const preparedOn = new WeakMap<pg.PoolClient, Set<string>>();

/** The largest xid8: a pair's statement run with it as its horizon finds no changes (a no-op). */
const NO_CHANGES = '18446744073709551615';

/**
 * Runs one node's refresh up to (not including) its commit; the transaction stays open. Round trips
 * are what a new hour costs (docs/scaling.md), so a node takes one message: it opens the
 * transaction, takes its snapshot and reads the node's state, decides per shard pair whether the
 * previous state covers it (in SQL, whose answer the client then follows), runs every pair's
 * statement with the previous horizon and snapshot from that answer (a pair that is not covered
 * gets a horizon past every transaction id: its statement changes nothing) and writes the node's
 * new state. The pairs recomputed whole (rare) follow, a statement at a time. The statements are
 * prepared once per connection (parsed once; each run still plans them with its values,
 * plan_cache_mode force_custom_plan, as the unnamed statements did); the values are literals or
 * read back from the transaction's settings, which a message of several statements needs.
 */
async function refreshNode(
  client: pg.PoolClient,
  def: RollupDefinition,
  shards: NodeShards,
  options: CitusRefreshOptions,
): Promise<NodeRefreshResult> {
  const started = performance.now();
  const pairs = shards.pairs.map((pair) => ({ pair, sql: shardSql(def, pair) }));
  // A pair is covered when the node's previous refresh covered both its placements (not moved or
  // copied here since) and its source shard was not truncated since.
  const covered = pairs.map(({ pair }) =>
    options.initial
      ? 'false'
      : `(s.snapshot IS NOT NULL AND s.horizon IS NOT NULL
          AND s.placements @> ARRAY[${pair.placements.map(lit).join(', ')}]::bigint[]
          AND NOT EXISTS (SELECT FROM aggjobs_node.truncations t
                          WHERE t.source_table = ${lit(pair.source)} AND NOT pg_visible_in_snapshot(t.xid, s.snapshot)))`,
  );
  const prepared = preparedOn.get(client) ?? new Set<string>();
  // The SELECT is the transaction's first statement: it takes the node's snapshot. Every write
  // visible in it is folded in by this refresh, and the next refresh takes the writes not visible in it.
  // jit off but on the first run (the coordinator's refreshes have it off always, refresh.ts): once the
  // source shards are analyzed with recent stamps, a new hour's statement is estimated at ~190,000,
  // past jit_above_cost, and compiled 114 functions in 120-240 ms of a 130-450 ms statement that takes
  // 3-10 ms without (bench's data, load 4).
  const statements = [
    'BEGIN ISOLATION LEVEL REPEATABLE READ',
    `SELECT set_config('statement_timeout', ${lit(String(options.statementTimeoutMs))}, true),
            set_config('work_mem', ${lit(options.workMem)}, true),
            set_config('lock_timeout', ${lit(String(options.lockTimeoutMs))}, true),
            set_config('synchronous_commit', 'off', true),
            set_config('plan_cache_mode', 'force_custom_plan', true),
            set_config('jit', ${options.initial ? "current_setting('jit')" : "'off'"}, true),
            set_config('aggjobs.refresh_next_snapshot', pg_current_snapshot()::text, true),
            set_config('aggjobs.refresh_snapshot', coalesce(s.snapshot, pg_current_snapshot())::text, true),
            ${pairs.map((_, i) => `set_config('aggjobs.refresh_horizon_${i}', CASE WHEN f.incremental[${i + 1}] THEN s.horizon::text ELSE '${NO_CHANGES}' END, true),`).join('\n            ')}
            pg_snapshot_xmin(pg_current_snapshot())::text AS next, pg_current_snapshot()::text AS "nextSnapshot",
            f.incremental
     FROM (SELECT) one LEFT JOIN aggjobs_node.rollup_state s ON s.rollup = ${lit(def.name)}
     CROSS JOIN LATERAL (SELECT ARRAY[${covered.join(', ')}]::boolean[] AS incremental) f`,
  ];
  const executed: number[] = [];
  pairs.forEach(({ pair, sql }, i) => {
    if (options.initial) return;
    const name = statementName(sql.refreshChanged);
    if (!prepared.has(name)) {
      statements.push(
        `PREPARE ${name} (xid8, text, text, timestamptz, pg_snapshot) AS ${sql.refreshChanged}`,
      );
      prepared.add(name);
    }
    executed.push(statements.length);
    statements.push(
      `EXECUTE ${name} (current_setting('aggjobs.refresh_horizon_${i}')::xid8, ${lit(options.timezone)},
         ${lit(pair.source)}, ${lit(options.cutoff)}, current_setting('aggjobs.refresh_snapshot')::pg_snapshot)`,
    );
  });
  // The node's state with its rows, before any node commits (its result follows at the commit).
  const placements = shards.pairs.flatMap((p) => p.placements).map(lit);
  statements.push(
    `INSERT INTO aggjobs_node.rollup_state (rollup, source_table, snapshot, horizon, placements, refreshed_at)
     SELECT ${lit(def.name)}, ${lit(def.source)}, n.snapshot, pg_snapshot_xmin(n.snapshot), ARRAY[${placements.join(', ')}]::bigint[], now()
     FROM (SELECT current_setting('aggjobs.refresh_next_snapshot')::pg_snapshot AS snapshot) n
     ON CONFLICT (rollup) DO UPDATE SET source_table = EXCLUDED.source_table, snapshot = EXCLUDED.snapshot,
       horizon = EXCLUDED.horizon, placements = EXCLUDED.placements, refreshed_at = EXCLUDED.refreshed_at`,
  );
  let done: pg.QueryResult[];
  try {
    done = await messages(client, statements.join(';\n'));
  } catch (error) {
    // Only the node's own objects are named aggjobs_node.*: missing, the node was not migrated.
    if (sqlStateOf(error) === SqlState.undefinedTable && (error as Error).message.includes('aggjobs_node.'))
      throw nodeNotMigratedError(nodeName(shards.node));
    throw error;
  }
  preparedOn.set(client, prepared);
  const head = done[1]?.rows[0] as NodeHead | undefined;
  if (head === undefined) throw new Error(`no snapshot from Citus node ${nodeName(shards.node)}`);
  const result: NodeRefreshResult = {
    node: nodeName(shards.node),
    shards: shards.pairs.length,
    shardsRecomputed: 0,
    groupsRecomputed: 0,
    rowsWritten: 0,
    rowsDeleted: 0,
    horizon: head.next,
    durationMs: 0,
  };
  const add = (rows: Array<Record<string, unknown>>): void => {
    result.groupsRecomputed += count(rows, 'groups');
    result.rowsWritten += count(rows, 'written');
    result.rowsDeleted += count(rows, 'deleted');
  };
  for (const at of executed) add(done[at]?.rows ?? []);
  let aligned: { lo: string; hi: string; nonempty: boolean } | undefined;
  for (const [i, { sql }] of pairs.entries()) {
    if (head.incremental[i] === true) continue;
    // Recomputed whole (the node's first run, a shard moved here, or one truncated since): rare, a
    // statement at a time.
    result.shardsRecomputed += 1;
    if (aligned === undefined) {
      const { rows: window } = await client.query<{ lo: string; hi: string; nonempty: boolean }>(
        `SELECT to_json(lo) #>> '{}' AS lo, to_json(hi) #>> '{}' AS hi, lo < hi AS nonempty FROM (${sql.alignWindow}) w`,
        ['-infinity', 'infinity', options.timezone, options.cutoff],
      );
      aligned = window[0] ?? { lo: '-infinity', hi: 'infinity', nonempty: false };
    }
    if (!aligned.nonempty) continue;
    add((await client.query(sql.refreshWindow, [aligned.lo, aligned.hi, options.timezone])).rows);
  }
  result.durationMs = Math.round(performance.now() - started);
  return result;
}

/**
 * Commits one node's refresh (one message): its result into the state row it wrote (the transaction
 * holds that row's lock and its table's, so this waits on no one), the commit; then, in a
 * transaction of its own, the node's change-log entries for `def`'s source shards that every rollup
 * of that source on the node has folded in are forgotten. A statement that fails skips the rest.
 */
async function commitNode(
  client: pg.PoolClient,
  def: RollupDefinition,
  shards: NodeShards,
  result: NodeRefreshResult,
): Promise<void> {
  const sources = shards.pairs.map((p) => lit(p.source));
  await messages(
    client,
    `UPDATE aggjobs_node.rollup_state SET last_result = ${lit(JSON.stringify(result))} WHERE rollup = ${lit(def.name)};
     COMMIT;
     DELETE FROM aggjobs_node.change_log
     WHERE source_table = ANY (ARRAY[${sources.join(', ')}]::text[])
       AND xid < (SELECT min(horizon) FROM aggjobs_node.rollup_state WHERE source_table = ${lit(def.source)});
     DELETE FROM aggjobs_node.truncations
     WHERE source_table = ANY (ARRAY[${sources.join(', ')}]::text[])
       AND xid < (SELECT min(horizon) FROM aggjobs_node.rollup_state WHERE source_table = ${lit(def.source)})`,
  );
}

/**
 * The per-node incremental refresh of `def` (see the top of this file). Called by refreshRollup,
 * which holds the rollup's advisory lock on the coordinator for its duration: refreshes of one
 * rollup do not overlap, so each node's snapshot is taken after the previous refresh committed.
 */
export async function refreshOnNodes(
  pool: Pool,
  nodes: readonly NodeShards[],
  def: RollupDefinition,
  options: CitusRefreshOptions,
): Promise<CitusRefreshResult> {
  const what = `incremental refresh of ${def.name}`;
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
    // Every node did its work: commit all at once. A node whose commit fails (lost meanwhile) keeps
    // its previous state with its previous rows (they commit together), and the next run recomputes
    // its changes.
    const committed = await Promise.allSettled(
      nodes.map(async (n, i) => {
        const work = results[i];
        if (work === undefined) throw new Error(`no refresh of ${nodeName(n.node)} to commit`);
        try {
          await commitNode(client(n), def, n, work);
        } catch (error) {
          throw new Error(
            `${what} failed on Citus node ${nodeName(n.node)} at its commit: ${(error as Error).message}`,
            { cause: error },
          );
        }
      }),
    );
    const uncommitted = committed.find((c): c is PromiseRejectedResult => c.status === 'rejected');
    if (uncommitted !== undefined) throw uncommitted.reason;
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
