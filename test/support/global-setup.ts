import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { parseSettings } from '../../src/config/index.ts';
import { createPool, startEmbeddedPostgres, type EmbeddedDatabase } from '../../src/db/index.ts';
import { prepareDatabase } from '../../src/rollups/index.ts';
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

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/**
 * Finds a PostgreSQL server (TEST_DATABASE_URL, else the local one on 127.0.0.1:5432, else an
 * embedded one), builds a template database with the real migrator once, and hands its name to the
 * test files, which clone it (`test/support/database.ts`). Finds or starts Redis the same way
 * (`redis-server.ts`) and hands its URL to the test files (`test/support/redis-url.ts`).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Redis first: where none can be had the run fails before anything else is set up.
  const redis = await findTestRedis();
  let embedded: EmbeddedDatabase | undefined;
  let adminUrl = process.env.TEST_DATABASE_URL;
  if (adminUrl === undefined) {
    const local = `postgres://${process.env.PGUSER ?? process.env.USER ?? 'postgres'}@127.0.0.1:5432/postgres`;
    if (await reachable(local)) adminUrl = local;
  }
  if (adminUrl === undefined) {
    embedded = await startEmbeddedPostgres({ dataDir: '.aggjobs/test' });
    adminUrl = withDatabase(embedded.url, 'postgres');
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
    const { rows: made } = await admin.query<{ datname: string }>(
      'SELECT datname FROM pg_database WHERE datname LIKE $1',
      [`aggjobs\\_t\\_${process.pid}\\_%`],
    );
    for (const row of made) {
      await admin.query(`DROP DATABASE IF EXISTS "${row.datname}" WITH (FORCE)`).catch(() => undefined);
    }
    await admin.query(`DROP DATABASE IF EXISTS "${template}" WITH (FORCE)`).catch(() => undefined);
    await admin.end();
    await embedded?.stop();
  };
}
