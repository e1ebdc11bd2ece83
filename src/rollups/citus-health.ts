import { oldestOpenTransaction, type Pool, type Queryable } from '../db/index.ts';
import { citusInstalled } from './citus-install.ts';
import { nodeNotMigratedError, nodesWithShards, onEachNode } from './citus-nodes.ts';

/** Health checks name their sessions on the nodes, and say nothing of what follows for a refresh. */
const HEALTH = { applicationName: 'aggjobs health', what: 'health check', consequence: '' };

/** Change-capture lag on one Citus node: its oldest open transaction holds that node's horizon back. */
export interface NodeCaptureLag {
  node: string;
  lagSeconds: number | null;
  pid: number | null;
  applicationName: string | null;
  /** The node could not be reached or read. */
  error?: string;
}

/**
 * Per node, on a Citus coordinator (undefined elsewhere): the age of the oldest transaction open on
 * each node that holds shards. On Citus every node has its own horizon (citus-refresh.ts), so a
 * long transaction on a worker holds back that worker's change log and snapshots, which the
 * coordinator's own oldest transaction does not show.
 */
export async function citusCaptureLag(pool: Pool): Promise<NodeCaptureLag[] | undefined> {
  if (!(await citusInstalled(pool))) return undefined;
  const done = await onEachNode(pool, await nodesWithShards(pool), HEALTH, oldestOpenTransaction);
  return done.map(({ node, value: oldest, error }) => ({
    node,
    lagSeconds: error === undefined ? Math.round(oldest?.ageSeconds ?? 0) : null,
    pid: oldest?.pid ?? null,
    applicationName: oldest?.applicationName ?? null,
    ...(error === undefined ? {} : { error: error.message }),
  }));
}

/** Each rollup's last refresh on one Citus node (aggjobs_node.rollup_state.refreshed_at there). */
export interface NodeRefreshLag {
  node: string;
  /** Seconds since the rollup's last refresh on this node; null: never refreshed on it. */
  lagSeconds: Record<string, number | null>;
  /** The node could not be reached or read. */
  error?: string;
}

/**
 * Per node, on a Citus coordinator (undefined elsewhere, or when none of `rollups` is distributed):
 * how long ago each distributed rollup of `rollups` was last refreshed on each node that holds
 * shards. An incremental refresh commits on every node and then on the coordinator, so the
 * coordinator's time is its last complete run; a node left behind (lost between two commits, or a
 * worker added since) shows here, by its own time.
 */
export async function citusRefreshLag(
  pool: Pool,
  rollups: readonly string[],
): Promise<NodeRefreshLag[] | undefined> {
  if (rollups.length === 0 || !(await citusInstalled(pool))) return undefined;
  // $1 rollup names: those whose table is distributed (refreshed per node).
  const { rows } = await pool.query<{ rollup: string }>(
    `SELECT r AS rollup FROM unnest($1::text[]) r
     WHERE EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = to_regclass('analytics.' || quote_ident(r)))
     ORDER BY r`,
    [rollups],
  );
  const distributed = rows.map((r) => r.rollup);
  if (distributed.length === 0) return undefined;
  const done = await onEachNode(pool, await nodesWithShards(pool), HEALTH, async (client, node) => {
    // A node without the aggjobs_node schema (a worker added after migrate) fails every refresh
    // that reaches it: said as the node's error, as the refresh says it.
    const { rows: ready } = await client.query<{ ready: boolean }>(
      "SELECT to_regclass('aggjobs_node.rollup_state') IS NOT NULL AS ready",
    );
    if (ready[0]?.ready !== true) throw nodeNotMigratedError(node);
    // $1 rollup names. Null: no state of its own on this node (no incremental refresh yet).
    const lag: Record<string, number | null> = Object.fromEntries(distributed.map((r) => [r, null]));
    const { rows: states } = await client.query<{ rollup: string; lag_s: number | null }>(
      `SELECT rollup, extract(epoch FROM now() - refreshed_at)::float8 AS lag_s
       FROM aggjobs_node.rollup_state WHERE rollup = ANY ($1::text[])`,
      [distributed],
    );
    for (const s of states) lag[s.rollup] = s.lag_s === null ? null : Math.round(s.lag_s);
    return lag;
  });
  return done.map(({ node, value, error }) =>
    error === undefined ? { node, lagSeconds: value } : { node, lagSeconds: {}, error: error.message },
  );
}

/**
 * The statistics' live rows (n_live_tup) of each of `tables` (`schema.name`) that Citus distributes,
 * summed over its shards on the workers: the coordinator's own table of a distributed table holds no
 * rows, so its statistics say 0. One command per worker node. Undefined where Citus is not installed.
 */
export async function citusRowEstimates(
  db: Queryable,
  tables: readonly string[],
): Promise<Map<string, number> | undefined> {
  if (tables.length === 0 || !(await citusInstalled(db))) return undefined;
  // $1 tables. Each worker answers with its shards' live rows by name; the coordinator's metadata
  // says which table each shard belongs to.
  const { rows } = await db.query<{ table_name: string; n: string | null }>(
    `WITH counts AS (
       SELECT e.key AS shard, e.value::bigint AS n
       FROM run_command_on_workers($$SELECT coalesce(json_object_agg(schemaname || '.' || relname, n_live_tup), '{}')
                                     FROM pg_stat_user_tables$$) w,
            json_each_text(CASE WHEN w.success THEN w.result::json ELSE '{}'::json END) e
     )
     SELECT t AS table_name, sum(c.n)::text AS n
     FROM unnest($1::text[]) t
     JOIN pg_dist_shard s ON s.logicalrelid = to_regclass(t)
     JOIN counts c ON c.shard = shard_name(s.logicalrelid, s.shardid)
     GROUP BY t`,
    [tables],
  );
  return new Map(rows.map((r) => [r.table_name, Number(r.n ?? 0)]));
}
