import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './processes.ts';

/**
 * Real Redis high-availability setups on loopback for the broker tests, from the `redis-server` on
 * PATH (a sentinel is `redis-server <conf> --sentinel`): a primary + replica watched by three
 * sentinels, and a Redis Cluster of three masters with a replica each. Each server has its own port
 * and a temporary directory; nothing is persisted (a failover loses what the replica had not yet
 * received, as in production without WAIT).
 */
interface Server {
  readonly port: number;
  process: ChildProcess | undefined;
  readonly args: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`redis-ha: ${what} not reached in ${ms} ms`);
    await sleep(200);
  }
}

async function command(port: number, ...args: string[]): Promise<unknown> {
  const client = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await client.call(args[0] ?? 'PING', ...args.slice(1));
  } finally {
    client.disconnect();
  }
}

/** Servers started and not yet killed: killed too if the test process exits without its teardown. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function start(server: Server): void {
  const child = spawn('redis-server', server.args, { stdio: 'ignore' });
  running.add(child);
  child.once('exit', () => running.delete(child));
  server.process = child;
}

async function kill(server: Server): Promise<void> {
  const child = server.process;
  server.process = undefined;
  if (child === undefined || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

async function up(server: Server): Promise<void> {
  start(server);
  await until(`redis-server on ${server.port}`, async () =>
    (await command(server.port, 'PING')) === 'PONG' ? true : undefined,
  );
}

/** A server on `port` with its files in `dir`, persisting nothing. */
function serverArgs(port: number, dir: string): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'no',
    '--dbfilename',
    `dump-${port}.rdb`,
  ];
}

/** Stops every server and removes their directory. */
async function stopAll(servers: readonly Server[], dir: string): Promise<void> {
  for (const s of servers) await kill(s);
  rmSync(dir, { recursive: true, force: true });
}

export interface SentinelSet {
  /** `redis+sentinel://127.0.0.1:<s1>,…/mymaster` */
  readonly url: string;
  /** The port of the current primary, as the sentinels say. */
  primaryPort(): Promise<number>;
  /** Kill -9 the current primary and wait until the sentinels have promoted the replica. */
  failover(): Promise<{ from: number; to: number }>;
  stop(): Promise<void>;
}

export async function startSentinelSet(): Promise<SentinelSet> {
  const dir = mkdtempSync(join(tmpdir(), 'aggjobs-sentinel-'));
  const base = (port: number): string[] => serverArgs(port, dir);
  const [p1, p2] = [await freePort(), await freePort()];
  const primary: Server = { port: p1, process: undefined, args: base(p1) };
  const replica: Server = {
    port: p2,
    process: undefined,
    args: [...base(p2), '--replicaof', '127.0.0.1', String(p1)],
  };
  const sentinels: Server[] = [];
  for (let i = 0; i < 3; i += 1) {
    const port = await freePort();
    const conf = join(dir, `sentinel-${port}.conf`);
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        'sentinel monitor mymaster 127.0.0.1 ' + p1 + ' 2',
        'sentinel down-after-milliseconds mymaster 1000',
        'sentinel failover-timeout mymaster 4000',
        'sentinel parallel-syncs mymaster 1',
        '',
      ].join('\n'),
    );
    sentinels.push({ port, process: undefined, args: [conf, '--sentinel'] });
  }
  const servers = [primary, replica, ...sentinels];
  try {
    for (const s of servers) await up(s);
    await until('the replica in sync', async () => {
      const info = String(await command(p2, 'INFO', 'replication'));
      return info.includes('master_link_status:up') ? true : undefined;
    });
    await until('three sentinels that know each other', async () => {
      const master = (await command(sentinels[0]?.port ?? 0, 'SENTINEL', 'MASTER', 'mymaster')) as string[];
      const others = Number(master[master.indexOf('num-other-sentinels') + 1]);
      return others === 2 ? true : undefined;
    });
  } catch (error) {
    await stopAll(servers, dir);
    throw error;
  }
  const primaryPort = async (): Promise<number> => {
    for (const s of sentinels) {
      const addr = (await command(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster').catch(
        () => undefined,
      )) as [string, string] | undefined;
      if (addr !== undefined) return Number(addr[1]);
    }
    throw new Error('redis-ha: no sentinel answers');
  };
  return {
    url: `redis+sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/mymaster`,
    primaryPort,
    async failover() {
      const from = await primaryPort();
      const victim = from === primary.port ? primary : replica;
      await kill(victim);
      const to = await until('a new primary', async () => {
        const port = await primaryPort();
        return port !== from ? port : undefined;
      });
      await until('the new primary to accept writes', async () => {
        const role = (await command(to, 'ROLE')) as [string];
        return role[0] === 'master' ? true : undefined;
      });
      return { from, to };
    },
    stop: async () => await stopAll(servers, dir),
  };
}

export interface RedisClusterSet {
  /** `redis+cluster://127.0.0.1:<p1>,…` */
  readonly url: string;
  /** The port of the master that holds `key`'s slot. */
  ownerOf(key: string): Promise<number>;
  /** Kill -9 the master of `key`'s slot and wait until its replica has taken the slot over. */
  failover(key: string): Promise<{ from: number; to: number }>;
  stop(): Promise<void>;
}

async function clusterOwner(ports: readonly number[], key: string): Promise<number> {
  for (const port of ports) {
    try {
      const slot = (await command(port, 'CLUSTER', 'KEYSLOT', key)) as number;
      const ranges = (await command(port, 'CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
      const owner = ranges.find(([a, b]) => slot >= a && slot <= b)?.[2];
      if (owner !== undefined) return Number(owner[1]);
    } catch {
      // that node is down: ask another
    }
  }
  throw new Error('redis-ha: no cluster node answers');
}

export async function startRedisCluster(): Promise<RedisClusterSet> {
  const dir = mkdtempSync(join(tmpdir(), 'aggjobs-cluster-'));
  const servers: Server[] = [];
  for (let i = 0; i < 6; i += 1) {
    const port = await freePort();
    servers.push({
      port,
      process: undefined,
      args: [
        ...serverArgs(port, dir),
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${port}.conf`,
        '--cluster-node-timeout',
        '2000',
      ],
    });
  }
  const ports = servers.map((s) => s.port);
  try {
    for (const s of servers) await up(s);
    const created = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    if (created.status !== 0)
      throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
    await until(
      'cluster_state:ok on every node',
      async () => {
        for (const port of ports) {
          if (!String(await command(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return undefined;
        }
        return true;
      },
      60_000,
    );
    // `cluster_state:ok` comes before the replicas are attached: wait for three, in sync.
    await until(
      'three replicas in sync',
      async () => {
        let inSync = 0;
        for (const port of ports) {
          const info = String(await command(port, 'INFO', 'replication'));
          if (info.includes('role:slave') && info.includes('master_link_status:up')) inSync += 1;
        }
        return inSync === 3 ? true : undefined;
      },
      60_000,
    );
  } catch (error) {
    await stopAll(servers, dir);
    throw error;
  }
  const alive = (): number[] => servers.filter((s) => s.process !== undefined).map((s) => s.port);
  return {
    url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    ownerOf: async (key) => await clusterOwner(alive(), key),
    async failover(key) {
      const from = await clusterOwner(alive(), key);
      const victim = servers.find((s) => s.port === from);
      if (victim !== undefined) await kill(victim);
      const to = await until(
        'the replica to take the slot over',
        async () => {
          const port = await clusterOwner(alive(), key);
          return port !== from ? port : undefined;
        },
        60_000,
      );
      await until('cluster_state:ok again', async () =>
        String(await command(to, 'CLUSTER', 'INFO')).includes('cluster_state:ok') ? true : undefined,
      );
      return { from, to };
    },
    stop: async () => await stopAll(servers, dir),
  };
}
