import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createPool, migrate, migrationStatus, readMigrations } from '../src/db/index.ts';
import { cliEntry } from './support/cli-command.ts';

const run = promisify(execFile);
const adminUrl = inject('pgAdminUrl');
const created: string[] = [];

async function emptyDatabase(): Promise<string> {
  const name = `aggjobs_t_${inject('pgTemplate').slice('aggjobs_tpl_'.length)}_mig_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  created.push(name);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

afterAll(async () => {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  for (const name of created) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
});

function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ stdout: string; stderr: string; code: number }> {
  return run(process.execPath, [cliEntry, ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
  })
    .then((r) => ({ ...r, code: 0 }))
    .catch((e: { stdout: string; stderr: string; code: number }) => ({
      stdout: e.stdout,
      stderr: e.stderr,
      code: e.code,
    }));
}

describe('aggjobs migrate', () => {
  it('creates the schema, then changes nothing on a second run', async () => {
    const url = await emptyDatabase();
    const first = await cli(['migrate'], { DATABASE_URL: url });
    expect(first.code).toBe(0);
    const status = await cli(['migrate', '--status'], { DATABASE_URL: url });
    expect(status.stdout).toMatch(/000001 {2}source_tables +applied/);
    expect(status.stdout).not.toMatch(/pending/);
    const pool = createPool({ connectionString: url, max: 2 });
    try {
      const before = await pool.query('SELECT version, applied_at FROM aggjobs.schema_migrations ORDER BY 1');
      expect(await migrate(pool)).toEqual([]);
      const after = await pool.query('SELECT version, applied_at FROM aggjobs.schema_migrations ORDER BY 1');
      expect(after.rows).toEqual(before.rows);
      const tables = await pool.query(
        `SELECT table_schema || '.' || table_name AS t FROM information_schema.tables
         WHERE table_schema IN ('public', 'analytics', 'aggjobs') ORDER BY 1`,
      );
      expect(tables.rows.map((r: { t: string }) => r.t)).toEqual(
        expect.arrayContaining([
          'public.execution_logs',
          'public.user_activity_events',
          'public.credit_transactions',
          'public.workspaces',
          'aggjobs.task_runs',
          'analytics.execution_metrics_hourly',
          'analytics.credit_consumption_daily',
        ]),
      );
    } finally {
      await pool.end();
    }
  });

  it('two concurrent migrators both succeed and apply each migration once', async () => {
    const url = await emptyDatabase();
    const pools = [
      createPool({ connectionString: url, max: 2 }),
      createPool({ connectionString: url, max: 2 }),
    ];
    try {
      const [a, b] = await Promise.all(pools.map((p) => migrate(p)));
      expect((a?.length ?? 0) + (b?.length ?? 0)).toBe(readMigrations().length);
      expect(Math.min(a?.length ?? 0, b?.length ?? 0)).toBe(0);
      const { rows } = await pools[0]!.query<{ n: number }>(
        'SELECT count(*) AS n FROM aggjobs.schema_migrations',
      );
      expect(rows[0]?.n).toBe(readMigrations().length);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it('refuses a database that has migrations this build does not know', async () => {
    const url = await emptyDatabase();
    const pool = createPool({ connectionString: url, max: 2 });
    try {
      await migrate(pool);
      await pool.query(
        `INSERT INTO aggjobs.schema_migrations (version, name, checksum) VALUES (999, 'from_the_future', 'x')`,
      );
      await expect(migrationStatus(pool)).rejects.toThrow(
        /migration 999 \(from_the_future\) that this build of aggjobs does not know/,
      );
      const result = await cli(['migrate'], { DATABASE_URL: url });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/does not know/);
    } finally {
      await pool.end();
    }
  });

  it('exits 2 naming the variable on a bad setting, and writes nothing', async () => {
    const url = await emptyDatabase();
    const result = await cli(['migrate'], { DATABASE_URL: url, HOURLY_ROLLUP_ENABLED: 'maybe' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('HOURLY_ROLLUP_ENABLED must be true or false, got "maybe"');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query("SELECT to_regclass('aggjobs.schema_migrations') AS t");
    await client.end();
    expect(rows[0]).toEqual({ t: null });
  });

  it('exits 2 on an unknown option', async () => {
    const result = await cli(['migrate', '--bogus'], {});
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/unknown option '--bogus'/);
  });
});
