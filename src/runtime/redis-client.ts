import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { parseRedisTarget, redact, type RedisNode, type RedisTarget } from '../config/index.ts';

/** A client of the broker's Redis: one server or a primary found by sentinels (Redis), or a Cluster. */
export type RedisClient = Redis | Cluster;

const nodeList = (nodes: readonly RedisNode[]): string =>
  nodes.map((n) => (n.host.includes(':') ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`)).join(',');

/**
 * A client for `url` in any form of RedisTarget, with `options` for every connection it makes
 * (a Cluster passes them to each node's client). Sentinels are asked for the primary again after a
 * failover; a Cluster follows its slots to the promoted replica.
 */
export function createRedisClient(url: string, options: RedisOptions = {}): RedisClient {
  const target = parseRedisTarget(url);
  if (target.kind === 'single') return new Redis(url, options);
  const auth = {
    ...(target.username === undefined ? {} : { username: target.username }),
    ...(target.password === undefined ? {} : { password: target.password }),
    ...(target.tls ? { tls: {} } : {}),
  };
  if (target.kind === 'sentinel') {
    return new Redis({
      ...options,
      ...auth,
      sentinels: target.sentinels,
      name: target.masterName,
      db: target.db,
      ...(target.sentinelPassword === undefined ? {} : { sentinelPassword: target.sentinelPassword }),
      ...(target.tls ? { enableTLSForSentinelMode: true } : {}),
    });
  }
  const { enableReadyCheck, retryStrategy: _perServer, ...perNode } = options;
  return new Cluster(target.nodes, {
    redisOptions: { ...perNode, ...auth },
    enableReadyCheck: enableReadyCheck ?? true,
    // A master's failover takes the cluster's node timeout and more: commands wait and follow the
    // slots to the promoted replica instead of failing.
    retryDelayOnFailover: 300,
    retryDelayOnClusterDown: 300,
    maxRedirections: 64,
  });
}

/** For log lines and the dashboard: which Redis this is, without secrets. */
export function describeRedis(url: string): string {
  const target: RedisTarget = parseRedisTarget(url);
  if (target.kind === 'single') return `Redis at ${redact(url)}`;
  if (target.kind === 'sentinel') {
    return `Redis Sentinel (primary "${target.masterName}" from ${nodeList(target.sentinels)})`;
  }
  return `Redis Cluster (from ${nodeList(target.nodes)})`;
}

/**
 * The server that answers for `key` now: the primary the sentinels chose, or the Cluster master that
 * holds the key's slot; for one server, its address. "host:port".
 */
export async function servingNode(client: RedisClient, key: string): Promise<string> {
  if (client instanceof Cluster) {
    const slot = (await client.call('CLUSTER', 'KEYSLOT', key)) as number;
    const ranges = (await client.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
    const owner = ranges.find(([from, to]) => slot >= from && slot <= to)?.[2];
    return owner === undefined ? 'unknown' : `${owner[0]}:${owner[1]}`;
  }
  const stream = (client as unknown as { stream?: { remoteAddress?: string; remotePort?: number } }).stream;
  return stream?.remoteAddress === undefined ? 'unknown' : `${stream.remoteAddress}:${stream.remotePort}`;
}
