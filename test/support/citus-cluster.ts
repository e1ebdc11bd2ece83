import { execFile } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, isAlive } from './processes.ts';

/**
 * A Citus cluster of our own for the distributed tests: a coordinator and two workers from the
 * local PostgreSQL 15 binaries, each with its own temporary data directory and free loopback port,
 * trust authentication on loopback, torn down after the run. Citus is not packaged by Debian;
 * `CITUS_BUILD_SCRIPT` builds it from the vendored source and installs it into that PostgreSQL.
 */

const run = promisify(execFile);

export const PG_BIN = process.env.CITUS_PG_BIN ?? '/usr/lib/postgresql/15/bin';
/** Beside the project, `../shared/vendor/citus/build.sh` (idempotent, needs root); .ci/run runs it. */
export const CITUS_BUILD_SCRIPT =
  [
    fileURLToPath(new URL('../../../shared/vendor/citus/build.sh', import.meta.url)),
    '/work/shared/vendor/citus/build.sh',
  ].find((path) => existsSync(path)) ?? '../shared/vendor/citus/build.sh';

/** Directories of this harness carry the pid of the run that made them: aggjobs-citus-<pid>-… */
const DIR_PREFIX = 'aggjobs-citus-';

export interface CitusNode {
  readonly role: 'coordinator' | 'worker';
  readonly port: number;
  readonly dataDir: string;
}

export interface CitusCluster {
  readonly coordinator: CitusNode;
  readonly workers: readonly CitusNode[];
  /** `postgres://postgres@127.0.0.1:<port>/<database>` */
  url(node: CitusNode, database: string): string;
  /** Stops one node (fast shutdown), as a node that goes down; `resume` starts it again. */
  halt(node: CitusNode): Promise<void>;
  resume(node: CitusNode): Promise<void>;
  stop(): Promise<void>;
}

/** Why the cluster cannot start here, in one line (undefined: Citus is installed). */
export async function citusMissing(): Promise<string | undefined> {
  const pgConfig = join(PG_BIN, 'pg_config');
  if (!existsSync(join(PG_BIN, 'postgres')) || !existsSync(pgConfig))
    return `PostgreSQL 15 server binaries are not in ${PG_BIN} (apt-get install postgresql-15, or set CITUS_PG_BIN)`;
  const libdir = (await run(pgConfig, ['--pkglibdir'])).stdout.trim();
  const sharedir = (await run(pgConfig, ['--sharedir'])).stdout.trim();
  if (!existsSync(join(libdir, 'citus.so')) || !existsSync(join(sharedir, 'extension', 'citus.control')))
    return `Citus is not installed in ${libdir}: run ${CITUS_BUILD_SCRIPT} as root (about 4 minutes, once)`;
  return undefined;
}

/** PostgreSQL refuses to run as root: as root, the servers run as the `postgres` system user. */
async function serverUser(): Promise<{ uid?: number; gid?: number }> {
  if (process.getuid?.() !== 0) return {};
  const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
  const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
  return { uid, gid };
}

/** Stops and removes the servers of runs that died before their teardown. */
async function removeLeftovers(user: { uid?: number; gid?: number }): Promise<void> {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const owner = Number(name.slice(DIR_PREFIX.length).split('-')[0]);
    if (!Number.isInteger(owner) || isAlive(owner)) continue;
    const dir = join(tmpdir(), name);
    for (const node of readdirSync(dir)) {
      const dataDir = join(dir, node);
      if (existsSync(join(dataDir, 'postmaster.pid')))
        await run(join(PG_BIN, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], user).catch(
          () => undefined,
        );
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

async function startNode(
  root: string,
  name: string,
  role: CitusNode['role'],
  user: { uid?: number; gid?: number },
): Promise<CitusNode> {
  const dataDir = join(root, name);
  const port = await freePort();
  await run(
    join(PG_BIN, 'initdb'),
    ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
    user,
  );
  // Test settings: durability off (the data is thrown away), few shards per table so that creating
  // a database's 11 distributed tables takes seconds; wal_level logical for shard moves.
  await appendFile(
    join(dataDir, 'postgresql.conf'),
    [
      `port = ${port}`,
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${dataDir}'`,
      "shared_preload_libraries = 'citus'",
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'wal_level = logical',
      'max_connections = 200',
      'citus.shard_count = 4',
      "citus.log_remote_commands = 'off'",
      '',
    ].join('\n'),
  );
  // HOME: libpq in the server (the coordinator's connections to the workers) reads client
  // certificates from ~/.postgresql, which must not be root's.
  await run(
    join(PG_BIN, 'pg_ctl'),
    ['-D', dataDir, '-l', join(dataDir, 'server.log'), '-w', '-t', '60', 'start'],
    { ...user, env: { ...process.env, HOME: root } },
  ).catch((error: unknown) => {
    const log = existsSync(join(dataDir, 'server.log'))
      ? readFileSync(join(dataDir, 'server.log'), 'utf8').slice(-2000)
      : '';
    throw new Error(`the Citus ${name} on port ${port} did not start: ${String(error)}\n${log}`);
  });
  return { role, port, dataDir };
}

/** Starts a coordinator and two workers (about 5 s). Throws with one line when Citus is missing. */
export async function startCitusCluster(): Promise<CitusCluster> {
  const missing = await citusMissing();
  if (missing !== undefined) throw new Error(missing);
  const user = await serverUser();
  await removeLeftovers(user);
  const root = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  if (user.uid !== undefined && user.gid !== undefined) chownSync(root, user.uid, user.gid);
  writeFileSync(join(root, 'README'), 'data directories of a Citus test cluster; removed after the run\n');
  const nodes = await Promise.all([
    startNode(root, 'coordinator', 'coordinator', user),
    startNode(root, 'worker1', 'worker', user),
    startNode(root, 'worker2', 'worker', user),
  ]);
  const [coordinator, ...workers] = nodes as [CitusNode, ...CitusNode[]];
  return {
    coordinator,
    workers,
    url: (node, database) => nodeUrl(node.port, database),
    async halt(node) {
      await run(join(PG_BIN, 'pg_ctl'), ['-D', node.dataDir, '-m', 'fast', '-w', 'stop'], user);
    },
    async resume(node) {
      await run(
        join(PG_BIN, 'pg_ctl'),
        ['-D', node.dataDir, '-l', join(node.dataDir, 'server.log'), '-w', '-t', '60', 'start'],
        { ...user, env: { ...process.env, HOME: root } },
      );
    },
    async stop() {
      await Promise.all(
        nodes.map((node) =>
          run(join(PG_BIN, 'pg_ctl'), ['-D', node.dataDir, '-m', 'immediate', '-w', 'stop'], user).catch(
            () => undefined,
          ),
        ),
      );
      rmSync(root, { recursive: true, force: true });
    },
  };
}

async function onNode<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Where the nodes listen: what test files get from the global setup. */
export interface ClusterPorts {
  readonly coordinatorPort: number;
  readonly workerPorts: readonly number[];
}

const nodeUrl = (port: number, database: string): string =>
  `postgres://postgres@127.0.0.1:${port}/${database}`;

/**
 * A database of the cluster ready for aggjobs: created on every node with the citus extension, the
 * coordinator's host set and the workers registered in the coordinator's metadata (Citus keeps its
 * metadata per database). Returns the coordinator's URL.
 */
export async function createCitusDatabase(ports: ClusterPorts, name: string): Promise<string> {
  await Promise.all(
    [ports.coordinatorPort, ...ports.workerPorts].map(async (port) => {
      await onNode(nodeUrl(port, 'postgres'), (c) => c.query(`CREATE DATABASE "${name}"`));
      await onNode(nodeUrl(port, name), (c) => c.query('CREATE EXTENSION citus'));
    }),
  );
  const url = nodeUrl(ports.coordinatorPort, name);
  await onNode(url, async (c) => {
    await c.query('SELECT citus_set_coordinator_host($1, $2)', ['127.0.0.1', ports.coordinatorPort]);
    for (const port of ports.workerPorts) await c.query('SELECT citus_add_node($1, $2)', ['127.0.0.1', port]);
  });
  return url;
}

export async function dropCitusDatabase(ports: ClusterPorts, name: string): Promise<void> {
  await Promise.all(
    [ports.coordinatorPort, ...ports.workerPorts].map((port) =>
      onNode(nodeUrl(port, 'postgres'), (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)),
    ),
  );
}
