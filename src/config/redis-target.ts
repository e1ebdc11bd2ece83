/** A host and port of a Redis server or sentinel. */
export interface RedisNode {
  host: string;
  port: number;
}

/** Credentials and TLS, common to every form. */
interface RedisAuth {
  username: string | undefined;
  password: string | undefined;
  /** `rediss…`: TLS to every node. */
  tls: boolean;
}

/**
 * Where Redis is, from REDIS_URL / CELERY_BROKER_URL / CELERY_RESULT_BACKEND:
 * - `redis://[user:pass@]host:port[/db]` (or `rediss://`): one server;
 * - `redis+sentinel://[user:pass@]s1:26379,s2:26379,s3:26379/<master>[/db][?sentinel_password=…]`:
 *   the primary that the sentinels name, followed through failovers;
 * - `redis+cluster://[user:pass@]n1:7000,n2:7001,…`: a Redis Cluster, from any of its nodes.
 */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | ({
      kind: 'sentinel';
      sentinels: RedisNode[];
      masterName: string;
      db: number;
      sentinelPassword: string | undefined;
    } & RedisAuth)
  | ({ kind: 'cluster'; nodes: RedisNode[] } & RedisAuth);

export const redisUrlForms =
  'redis://host:port[/db], rediss://…, redis+sentinel://s1:26379,s2:26379/<master>[/db] or redis+cluster://n1:7000,n2:7001';

const multiHost = /^(rediss?)\+(sentinel|cluster):\/\/(?:([^/]*)@)?([^/?#@]+)(\/[^?#]*)?(?:\?([^#]*))?$/;

function decode(part: string | undefined): string | undefined {
  if (part === undefined || part === '') return undefined;
  return decodeURIComponent(part);
}

function nodesOf(list: string, defaultPort: number): RedisNode[] {
  return list.split(',').map((entry) => {
    const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(entry.trim());
    const port = m?.[3] === undefined ? defaultPort : Number(m[3]);
    if (m === null || port < 1 || port > 65535) {
      throw new Error(`"${entry}" is not host:port`);
    }
    return { host: m[1] ?? m[2] ?? '', port };
  });
}

/**
 * Parses a Redis URL in one of the forms of RedisTarget; throws an Error whose message says what is
 * wrong (never the password).
 */
export function parseRedisTarget(value: string): RedisTarget {
  if (/^rediss?:\/\//.test(value)) {
    try {
      new URL(value);
    } catch {
      throw new Error('not a URL');
    }
    return { kind: 'single', url: value };
  }
  const m = multiHost.exec(value);
  if (m === null) {
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(value)?.[1];
    if (scheme !== undefined && !/^rediss?\+(sentinel|cluster)$/.test(scheme)) {
      throw new Error(`"${scheme}:" is not a Redis scheme`);
    }
    throw new Error('hosts must be host:port separated by commas');
  }
  const [, scheme, form, userinfo, hosts = '', path = '', query = ''] = m;
  const colon = userinfo?.indexOf(':') ?? -1;
  const auth: RedisAuth = {
    username: decode(colon < 0 ? userinfo : userinfo?.slice(0, colon)),
    password: decode(colon < 0 ? undefined : userinfo?.slice(colon + 1)),
    tls: scheme === 'rediss',
  };
  const params = new URLSearchParams(query);
  for (const key of params.keys()) {
    if (form !== 'sentinel' || key !== 'sentinel_password') {
      throw new Error(`unknown parameter "${key}" (a sentinel URL takes sentinel_password)`);
    }
  }
  if (form === 'cluster') {
    if (path !== '' && path !== '/') throw new Error('a cluster URL has no path: every node has db 0');
    return { kind: 'cluster', nodes: nodesOf(hosts, 6379), ...auth };
  }
  const [masterName, db, ...rest] = path.split('/').slice(1);
  if (masterName === undefined || masterName === '') {
    throw new Error('a sentinel URL names the primary after the hosts (…:26379/mymaster)');
  }
  if (rest.length > 0 || (db !== undefined && db !== '' && !/^\d{1,2}$/.test(db))) {
    throw new Error("after the primary's name comes only the database number (…/mymaster/0)");
  }
  return {
    kind: 'sentinel',
    sentinels: nodesOf(hosts, 26379),
    masterName: decodeURIComponent(masterName),
    db: db === undefined || db === '' ? 0 : Number(db),
    sentinelPassword: decode(params.get('sentinel_password') ?? undefined),
    ...auth,
  };
}
