import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../support/database.ts';
import { spawnCli } from '../reliability/cli-process.ts';
import { runCli } from './cli-runner.ts';

const db = await createTestDatabase();
const dataDir = mkdtempSync(join(tmpdir(), 'aggjobs-db-cmd-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

/** The embedded database: no DATABASE_URL, its own data directory, the PostgreSQL broker. */
const embedded = {
  DATABASE_URL: '',
  AGGJOBS_DATA_DIR: dataDir,
  REDIS_URL: '',
  CELERY_BROKER_URL: '',
  LOG_LEVEL: 'info',
};

describe('aggjobs db', () => {
  it('url and psql say how to start the embedded database when it is not running', async () => {
    for (const sub of ['url', 'psql']) {
      const out = await runCli(['db', sub], embedded);
      expect(out.status).toBe(1);
      expect(out.stderr.trim()).toBe(
        `aggjobs: the embedded PostgreSQL (data in ${dataDir}) is not running: start it with \`npm start\` (or \`aggjobs start\`), or set DATABASE_URL`,
      );
    }
  });

  it('start prints the URL once, password hidden; db url prints it whole; db psql opens psql on it', async () => {
    const start = spawnCli(['start', '--no-dashboard', '--no-demo', '-c', '1'], embedded, 120_000);
    try {
      await start.waitFor(/database URL: postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/aggjobs/, 90_000);
      await start.waitFor('beat and worker running', 60_000);
      expect(start.output().match(/database URL:/g)).toHaveLength(1);
      const port = /database URL: postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:(\d+)/.exec(start.output())?.[1];

      const url = await runCli(['db', 'url'], embedded);
      expect(url.status, url.stderr).toBe(0);
      const printed = url.stdout.trim();
      expect(printed).toMatch(new RegExp(`^postgres://postgres:[^*@]+@127\\.0\\.0\\.1:${port}/aggjobs$`));
      const client = new pg.Client({ connectionString: printed });
      await client.connect();
      const { rows } = await client.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM aggjobs.schema_migrations',
      );
      await client.end();
      expect(rows[0]?.n).toBeGreaterThan(0);

      const psql = await runCli(
        ['db', 'psql', '-At', '-c', 'SELECT current_database() || $$ as $$ || current_user'],
        embedded,
      );
      expect(psql.status, psql.stderr).toBe(0);
      expect(psql.stdout.trim()).toBe('aggjobs as postgres');
    } finally {
      expect(await start.stop('SIGINT')).toBe(0);
    }
  }, 180_000);

  it('use DATABASE_URL when it is set', async () => {
    const url = await runCli(['db', 'url'], { ...embedded, DATABASE_URL: db.url });
    expect(url.stdout.trim()).toBe(db.url);
    const psql = await runCli(['db', 'psql', '-At', '-c', 'SELECT current_database()'], {
      ...embedded,
      DATABASE_URL: db.url,
    });
    expect(psql.status, psql.stderr).toBe(0);
    expect(psql.stdout.trim()).toBe(db.name);
  });
});
