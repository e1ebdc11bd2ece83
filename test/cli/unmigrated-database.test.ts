/**
 * A worker, beat or run started on a database that lacks migrations this build needs (never
 * migrated, or migrated by an older version) refuses in one line naming them and `aggjobs migrate`,
 * and writes nothing; after `aggjobs migrate` the same command runs.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it, inject } from 'vitest';
import { migrate, readMigrations } from '../../src/db/index.ts';
import { runCli } from './cli-runner.ts';

const adminUrl = inject('pgAdminUrl');
const created: string[] = [];

async function admin<T>(work: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    return await work(c);
  } finally {
    await c.end();
  }
}

/** An empty database; its URL. */
async function emptyDatabase(): Promise<string> {
  const name = `aggjobs_unmigrated_${randomBytes(4).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE "${name}"`));
  created.push(name);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

afterAll(async () => {
  for (const name of created) await admin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
});

const env = (url: string): Record<string, string> => ({
  DATABASE_URL: url,
  REDIS_URL: '',
  CELERY_BROKER_URL: '',
  BROKER_KEY_PREFIX: `{u${randomBytes(4).toString('hex')}}`,
  LOG_LEVEL: 'warn',
});

async function withPool<T>(url: string, work: (p: pg.Pool) => Promise<T>): Promise<T> {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  try {
    return await work(pool);
  } finally {
    await pool.end();
  }
}

describe('a database without the migrations this build needs', () => {
  it('never migrated: worker, beat and run refuse in one line naming them and aggjobs migrate, health says it; nothing written', async () => {
    const url = await emptyDatabase();
    const count = readMigrations().length;
    for (const args of [['worker'], ['beat'], ['run', 'hourly_rollup']]) {
      const out = await runCli(args, env(url), 60_000);
      expect(out.status, out.stderr).toBe(1);
      const lines = out.stderr.trim().split('\n');
      expect(lines, out.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(
          `^aggjobs: .* lacks ${count} migrations this version of aggjobs needs \\(000001_.*and ${count - 3} more\\): run aggjobs migrate first$`,
        ),
      );
    }
    // The health command says it too, on its database check, and exits unhealthy.
    const health = await runCli(['health'], env(url), 60_000);
    expect(health.status, health.stderr).toBe(2);
    expect(health.stdout).toMatch(
      new RegExp(
        `unhealthy +database +connected, round trip \\d+ ms; lacks ${count} migrations .*: run aggjobs migrate`,
      ),
    );
    const schemas = await withPool(url, async (p) => {
      const { rows } = await p.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_namespace WHERE nspname IN ('aggjobs', 'analytics', 'bullmq')",
      );
      return rows[0]?.n;
    });
    expect(schemas).toBe(0);
  }, 240_000);

  it('migrated by an older version: names the missing one; after aggjobs migrate the run goes', async () => {
    const url = await emptyDatabase();
    const all = readMigrations();
    const last = all.at(-1);
    if (last === undefined) throw new Error('no migrations');
    await withPool(url, (p) => migrate(p, { migrations: all.slice(0, -1) }));
    const name = `${String(last.version).padStart(6, '0')}_${last.name}`;

    const refused = await runCli(['run', 'health_check'], env(url), 60_000);
    expect(refused.status, refused.stderr).toBe(1);
    expect(refused.stderr.trim()).toMatch(
      new RegExp(`lacks 1 migration this version of aggjobs needs \\(${name}\\): run aggjobs migrate first$`),
    );
    const runs = await withPool(url, async (p) => {
      const { rows } = await p.query<{ n: number }>('SELECT count(*)::int AS n FROM aggjobs.task_runs');
      return rows[0]?.n;
    });
    expect(runs).toBe(0);

    const migrated = await runCli(['migrate'], env(url), 60_000);
    expect(migrated.status, migrated.stderr).toBe(0);
    const ran = await runCli(['run', 'health_check'], env(url), 90_000);
    expect(ran.stderr).not.toMatch(/lacks .* migration/);
    const after = await withPool(url, async (p) => {
      const { rows } = await p.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM aggjobs.task_runs WHERE task = 'health_check'",
      );
      return rows[0]?.n;
    });
    expect(after).toBe(1);
  }, 240_000);
});
