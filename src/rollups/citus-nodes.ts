import pg from 'pg';
import { hearConnectionErrors, sessionStylesHook, type Pool, type Queryable } from '../db/index.ts';
import type { RollupDefinition } from './definition.ts';

/**
 * The nodes of a Citus cluster as the engine reaches them: each node that holds shards is connected
 * to directly, with the coordinator's credentials and database and the node's address from Citus's
 * metadata (`pg_dist_node`), as Citus itself connects to them. Change capture and incremental
 * refreshes run per node (docs/scaling.md "Per-node change capture").
 */

export interface CitusNodeAddress {
  readonly host: string;
  readonly port: number;
}

export function nodeName(node: CitusNodeAddress): string {
  return `${node.host}:${node.port}`;
}

/** Thrown when a node that holds shards of a rollup cannot be reached: nothing was written. */
export class CitusNodeUnreachableError extends Error {
  override readonly name = 'CitusNodeUnreachableError';
  constructor(
    readonly node: string,
    what: string,
    cause: unknown,
    /** What follows for the caller (a refresh's by default); empty: nothing said. */
    consequence = 'nothing was written, and the next run catches up once the node is back',
  ) {
    super(
      `${what}: Citus worker node ${node} is unreachable (${cause instanceof Error ? cause.message : String(cause)})` +
        (consequence === '' ? '' : `; ${consequence}`),
      { cause },
    );
  }
}

/**
 * Connection settings for `node`: the pool's own, with the host and port replaced. A keyword/value
 * connection string (`host=… port=…`) is not rewritten: use a URL (`postgres://…`) for DATABASE_URL
 * on Citus.
 */
function nodeClientConfig(pool: Pool, node: CitusNodeAddress, applicationName: string): pg.ClientConfig {
  const options = pool.options as pg.PoolConfig;
  const base: pg.ClientConfig = {
    user: options.user,
    password: options.password,
    database: options.database,
    ssl: options.ssl,
    types: options.types,
    application_name: applicationName,
    connectionTimeoutMillis: 10_000,
  };
  if (options.connectionString !== undefined) {
    let url: URL;
    try {
      url = new URL(options.connectionString);
    } catch {
      throw new Error(
        'DATABASE_URL must be a postgres:// URL on Citus: the engine connects to each worker node with ' +
          "the coordinator's URL and the node's host and port",
      );
    }
    url.hostname = node.host;
    url.port = String(node.port);
    url.searchParams.delete('host');
    url.searchParams.delete('port');
    return { ...base, connectionString: url.toString() };
  }
  return { ...base, host: node.host, port: node.port };
}

const nodePools = new WeakMap<Pool, Map<string, pg.Pool>>();

/**
 * A pool of connections to `node` beside the coordinator's `pool` (same credentials), one per
 * application name (refresh, health check, migrate: each names its sessions). A new connection to
 * a Citus node costs a backend start and Citus's metadata cache, tens of milliseconds, as much as
 * an incremental refresh of a new hour. At most 2 connections each; idle ones close after 30 s and
 * do not keep the process alive (they are not ended with the coordinator's pool). A node that goes
 * down errors its idle connections, which the pool then drops.
 */
function nodePool(pool: Pool, node: CitusNodeAddress, applicationName: string): pg.Pool {
  let pools = nodePools.get(pool);
  if (pools === undefined) {
    pools = new Map();
    nodePools.set(pool, pools);
  }
  const key = `${applicationName}@${nodeName(node)}`;
  let found = pools.get(key);
  if (found === undefined) {
    found = new pg.Pool({
      ...nodeClientConfig(pool, node, applicationName),
      max: 2,
      idleTimeoutMillis: 30_000,
      allowExitOnIdle: true,
      onConnect: sessionStylesHook,
    });
    hearConnectionErrors(found);
    pools.set(key, found);
  }
  return found;
}

/** A pooled connection to a node; an unreachable node throws CitusNodeUnreachableError naming it. */
export async function connectPooledNode(
  pool: Pool,
  node: CitusNodeAddress,
  applicationName: string,
  what: string,
  consequence?: string,
): Promise<pg.PoolClient> {
  try {
    return await nodePool(pool, node, applicationName).connect();
  } catch (error) {
    throw new CitusNodeUnreachableError(nodeName(node), what, error, consequence);
  }
}

/** A node's outcome in onEachNode: what the work returned, or the error naming the node. */
export type NodeOutcome<T> =
  { node: string; value: T; error?: undefined } | { node: string; value?: undefined; error: Error };

/**
 * Runs `work` on each of `nodes` at once, each on a pooled connection to its node that goes back
 * to its pool afterwards (closed when the work failed). Per node, in order: what `work` returned,
 * or an error naming the node: CitusNodeUnreachableError, or "<what> failed on Citus node
 * host:port: …" with the work's error as its cause.
 */
export async function onEachNode<T>(
  pool: Pool,
  nodes: readonly CitusNodeAddress[],
  how: { applicationName: string; what: string; consequence?: string },
  work: (client: pg.PoolClient, node: string) => Promise<T>,
): Promise<Array<NodeOutcome<T>>> {
  return Promise.all(
    nodes.map(async (address): Promise<NodeOutcome<T>> => {
      const node = nodeName(address);
      let client: pg.PoolClient;
      try {
        client = await connectPooledNode(pool, address, how.applicationName, how.what, how.consequence);
      } catch (error) {
        return { node, error: error as CitusNodeUnreachableError };
      }
      let broken: Error | undefined;
      try {
        return { node, value: await work(client, node) };
      } catch (error) {
        broken = error instanceof Error ? error : new Error(String(error));
        const message = `${how.what} failed on Citus node ${node}: ${broken.message}`;
        return { node, error: new Error(message, { cause: error }) };
      } finally {
        client.release(broken);
      }
    }),
  );
}

/** A node without the aggjobs_node schema, which every refresh and health check of it needs. */
export function nodeNotMigratedError(node: string): Error {
  return new Error(
    `Citus node ${node} lacks aggjobs' node objects (schema aggjobs_node and its tables: a worker added ` +
      'after aggjobs migrate, or objects of an older version of aggjobs): run aggjobs migrate again',
  );
}

/** The primary nodes that hold shard placements (the coordinator too, when it holds shards). */
export async function nodesWithShards(db: Queryable): Promise<CitusNodeAddress[]> {
  const { rows } = await db.query<{ host: string; port: number }>(
    `SELECT DISTINCT n.nodename AS host, n.nodeport AS port
     FROM pg_dist_node n
     WHERE n.noderole = 'primary' AND n.isactive
       AND EXISTS (SELECT FROM pg_dist_placement p WHERE p.groupid = n.groupid)
     ORDER BY 1, 2`,
  );
  return rows;
}

/** The primary worker nodes registered on the coordinator (not the coordinator itself). */
export async function workerNodes(db: Queryable): Promise<CitusNodeAddress[]> {
  const { rows } = await db.query<{ host: string; port: number }>(
    `SELECT nodename AS host, nodeport AS port FROM pg_dist_node
     WHERE noderole = 'primary' AND isactive AND groupid <> 0 ORDER BY 1, 2`,
  );
  return rows;
}

/** One shard of a rollup's source and its co-located shard of the rollup table, on one node. */
export interface ShardPair {
  /** `schema.table_<shardid>` of the source shard, as its triggers name it in the change log. */
  readonly source: string;
  readonly target: string;
  /** Placement ids of both: a new id means the shard was moved (or copied) since. */
  readonly placements: readonly string[];
}

export interface NodeShards {
  readonly node: CitusNodeAddress;
  readonly pairs: readonly ShardPair[];
}

/**
 * Where each shard of `def`'s source is, with its co-located rollup shard (the same hash range, on
 * the same node: co-location moves them together), from the coordinator's metadata; null when the
 * source is not a Citus table (the engine's one-server path). One round trip: the distribution
 * check and the shard map were two on every incremental run.
 */
export async function shardPairsByNode(db: Queryable, def: RollupDefinition): Promise<NodeShards[] | null> {
  const { rows } = await db.query<{
    distributed: boolean;
    host: string | null;
    port: number | null;
    source_schema: string;
    source_shard: string;
    target_shard: string;
    source_placement: string;
    target_placement: string;
  }>({
    // Named: prepared once per connection, then run by its generic plan. Planning this join of
    // Citus's catalogs took 3-4 ms, three times its execution, on every incremental run (a new
    // hour's run is ~25-40 ms on the bench's cluster).
    name: 'aggjobs-citus-shard-map',
    // $1 source table, $2 rollup table. One row with distributed and nulls when there are no pairs.
    text: `SELECT d.distributed, p.* FROM
       (SELECT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = to_regclass($1)) AS distributed) d
     LEFT JOIN LATERAL (
       SELECT n.nodename AS host, n.nodeport AS port, s.shardid AS source_shard_id,
              (SELECT nspname FROM pg_namespace WHERE oid = (SELECT relnamespace FROM pg_class WHERE oid = s.logicalrelid)) AS source_schema,
              (parse_ident(shard_name(s.logicalrelid, s.shardid)))[cardinality(parse_ident(shard_name(s.logicalrelid, s.shardid)))] AS source_shard,
              (parse_ident(shard_name(t.logicalrelid, t.shardid)))[cardinality(parse_ident(shard_name(t.logicalrelid, t.shardid)))] AS target_shard,
              ps.placementid::text AS source_placement, pt.placementid::text AS target_placement
       FROM pg_dist_shard s
       JOIN pg_dist_shard t ON t.logicalrelid = to_regclass($2) AND t.shardminvalue = s.shardminvalue
       JOIN pg_dist_placement ps ON ps.shardid = s.shardid
       JOIN pg_dist_placement pt ON pt.shardid = t.shardid AND pt.groupid = ps.groupid
       JOIN pg_dist_node n ON n.groupid = ps.groupid AND n.noderole = 'primary'
       WHERE s.logicalrelid = to_regclass($1)
     ) p ON true
     ORDER BY p.host, p.port, p.source_shard_id`,
    values: [def.source, `analytics.${def.name}`],
  });
  if (rows[0]?.distributed !== true) return null;
  const byNode = new Map<string, { node: CitusNodeAddress; pairs: ShardPair[] }>();
  for (const row of rows) {
    if (row.host === null || row.port === null) continue;
    const node = { host: row.host, port: row.port };
    const entry = byNode.get(nodeName(node)) ?? { node, pairs: [] };
    entry.pairs.push({
      source: `${row.source_schema}.${row.source_shard}`,
      target: `analytics.${row.target_shard}`,
      placements: [row.source_placement, row.target_placement],
    });
    byNode.set(nodeName(node), entry);
  }
  return [...byNode.values()];
}
