import { createServer, type Server } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../support/database.ts';
import { runCli } from './cli-runner.ts';

const db = await createTestDatabase();
const prefix = `{f${randomBytes(4).toString('hex')}}`;
/** A Redis URL nothing listens on. */
const deadRedis = 'redis://127.0.0.1:1';
/** A PostgreSQL URL nothing listens on. */
const deadPostgres = 'postgres://root@127.0.0.1:1/aggjobs';

function env(extra: Record<string, string>): Record<string, string> {
  return {
    DATABASE_URL: db.url,
    REDIS_URL: '',
    CELERY_BROKER_URL: '',
    BROKER_KEY_PREFIX: prefix,
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

/** The stderr of an expected failure: one `aggjobs:` line, no stack frame. */
function expectOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^aggjobs: /);
  expect(lines[0]).toMatch(pattern);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe('expected failures answer in one line without a stack', () => {
  it.concurrent.each([['worker'], ['beat'], ['dashboard'], ['run', 'hourly_rollup']])(
    '%s with Redis unreachable: exit 1, names Redis and what to do',
    async (...args) => {
      // The broker waits up to 10 s for Redis before giving up; four such processes at once on a
      // loaded 2-core machine took 35 s: bounds with room (a hang still fails).
      const out = await runCli(args, env({ REDIS_URL: deadRedis }), 100_000);
      expect(out.status).toBe(1);
      expectOneLine(out.stderr, /cannot reach the Redis broker at redis:\/\/127\.0\.0\.1:1 .*start Redis/);
    },
    120_000,
  );

  it.concurrent.each([['worker'], ['beat'], ['dashboard'], ['run', 'hourly_rollup']])(
    '%s with the database unreachable: exit 1, names the server and what to do',
    async (...args) => {
      const out = await runCli(args, env({ DATABASE_URL: deadPostgres }), 100_000);
      expect(out.status).toBe(1);
      expectOneLine(out.stderr, /cannot reach PostgreSQL at 127\.0\.0\.1:1.*ECONNREFUSED.*start PostgreSQL/);
    },
    120_000,
  );

  it('a missing database: exit 1, says how to create it', async () => {
    const url = new URL(db.url);
    url.pathname = '/aggjobs_no_such_database';
    const out = await runCli(['run', 'hourly_rollup'], env({ DATABASE_URL: url.toString() }));
    expect(out.status).toBe(1);
    expectOneLine(out.stderr, /database "aggjobs_no_such_database" does not exist.*createdb/);
  });

  it('control retry on a running run: exit 1, says what can be retried and how to stop it', async () => {
    await db.pool.query(
      `INSERT INTO aggjobs.task_runs (id, task, state, queue, started_at) VALUES ('r-running', 'hourly_rollup', 'running', 'aggregation', now())`,
    );
    const out = await runCli(['control', 'retry', 'r-running'], env({}));
    expect(out.status).toBe(1);
    expectOneLine(
      out.stderr,
      /run r-running is running: only failed, timed-out or revoked runs can be retried.*control revoke --terminate r-running/,
    );
    const missing = await runCli(['control', 'retry', 'r-nothing'], env({}));
    expect(missing.status).toBe(1);
    expectOneLine(missing.stderr, /no run r-nothing: list runs with `aggjobs control runs`/);
  });

  describe('a port in use', () => {
    let server: Server;
    let port = 0;
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('start and dashboard: exit 2, say which port and how to choose another', async () => {
      server = createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as { port: number }).port;
      for (const args of [
        ['start', '--no-demo', '--port', String(port)],
        ['dashboard', '--port', String(port), '--host', '127.0.0.1'],
      ]) {
        const out = await runCli(args, env({}));
        expect(out.status, args.join(' ')).toBe(2);
        expectOneLine(
          out.stderr,
          new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use: choose another with --port`),
        );
      }
    });
  });

  it('LOG_LEVEL=debug adds the stack of the cause', async () => {
    const out = await runCli(
      ['run', 'hourly_rollup'],
      env({ DATABASE_URL: deadPostgres, LOG_LEVEL: 'debug' }),
    );
    expect(out.status).toBe(1);
    expect(out.stderr).toMatch(/^aggjobs: cannot reach PostgreSQL/m);
    expect(out.stderr).toMatch(/\n\s+at /);
  });
  it('--debug adds the stack of the cause too', async () => {
    const out = await runCli(['run', 'hourly_rollup', '--debug'], env({ DATABASE_URL: deadPostgres }));
    expect(out.status).toBe(1);
    expect(out.stderr).toMatch(/^aggjobs: cannot reach PostgreSQL/m);
    expect(out.stderr).toMatch(/\n\s+at /);
  });

  it('a typo in a task name inside TASK_TIME_LIMITS: exit 2, names the task', async () => {
    const out = await runCli(['health'], env({ TASK_TIME_LIMITS: 'hourly_rolup=5' }));
    expect(out.status).toBe(2);
    expectOneLine(out.stderr, /^aggjobs: TASK_TIME_LIMITS must be .*no task is named hourly_rolup/);
  });
});
