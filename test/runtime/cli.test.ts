import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../support/database.ts';
import { backends, dropRedisNamespaces, eventually, testRedisUrl } from './runtime-harness.ts';
import { cliEntry } from '../support/cli-command.ts';

const db = await createTestDatabase();
const prefixes: string[] = [];
afterAll(() => dropRedisNamespaces(prefixes));

function prefix(): string {
  const p = `{c${randomBytes(4).toString('hex')}}`;
  prefixes.push(p);
  return p;
}

function env(backend: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL: db.url,
    ...(backend === 'redis' ? { REDIS_URL: testRedisUrl } : { REDIS_URL: '', CELERY_BROKER_URL: '' }),
    BROKER_KEY_PREFIX: prefix(),
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

function aggjobs(
  args: string[],
  environment: NodeJS.ProcessEnv,
): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [cliEntry, ...args], {
    env: environment,
    encoding: 'utf8',
    timeout: 40_000,
  });
}

describe('aggjobs run', () => {
  it('--eager runs the task here and prints its result as JSON', () => {
    const out = aggjobs(['run', 'daily_rollup', '--eager'], env('postgres'));
    expect(out.status).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ result: { grain: 'day', mode: 'incremental' } });
  });

  it('bad arguments and bad options exit 2 with a message naming the rule', () => {
    const bad = aggjobs(
      ['run', 'hourly_rollup', '--eager', '--arg', 'target_hour=tomorrow'],
      env('postgres'),
    );
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/target_hour must be an ISO date or date-time/);
    const unknown = aggjobs(['run', 'weekly_rolup', '--eager'], env('postgres'));
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/unknown task "weekly_rolup"/);
    const flags = aggjobs(['worker', '--autoscale', '2,8'], env('postgres'));
    expect(flags.status).toBe(2);
    expect(flags.stderr).toMatch(/--autoscale must be max,min/);
  });
});

describe.each(backends)('aggjobs start on %s', (backend) => {
  it('migrates, runs beat and worker, fills the rollups, and stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, [cliEntry, 'start', '--no-demo', '-c', '2'], {
      env: env(backend),
      stdio: 'ignore',
    });
    try {
      await eventually(async () => {
        const { rows } = await db.pool.query(
          `SELECT 1 FROM aggjobs.task_runs WHERE task = 'monthly_rollup' AND state = 'succeeded' AND worker LIKE $1`,
          [`${child.pid}@%`],
        );
        return rows.length > 0;
      }, 40_000);
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*) AS n FROM aggjobs.workers WHERE pid = $1 AND stopped_at IS NOT NULL`,
        [child.pid],
      );
      expect(rows[0]?.n).toBe(1);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
