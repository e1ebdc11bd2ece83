/**
 * Every `curl` line of docs/api.md, run through /bin/sh against a real `aggjobs dashboard` (basic
 * auth `ops:secret`, as the page's `$AUTH`) and a worker named `27247@vm` (the page's worker), on a
 * test database and a fresh broker namespace. Each must answer 2xx. The page's `export` lines are
 * replaced by the test's own `D` (a free port) and `AUTH`; the page's example run ids become runs
 * made here: `hourly_rollup@20261129T130500Z` exists, `9d202727-…` is a failed run (retried), `$RUN`
 * a queued one (revoked, then terminated: a revoked run answers 2xx again). The `/metrics` line ends
 * in `grep`, whose exit status is what counts there.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testRedisUrl } from '../support/redis-url.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { cliEntry } from '../support/cli-command.ts';

const page = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');

/** The `curl` commands of the page's `sh` blocks, continuation lines joined. */
const curls = [...page.matchAll(/```sh\n([\s\S]*?)```/g)]
  .map((m) => (m[1] ?? '').replace(/\\\n\s*/g, ''))
  .flatMap((block) => block.split('\n'))
  .map((l) => l.trim())
  .filter((l) => l.startsWith('curl '));

let db: TestDatabase;
let env: NodeJS.ProcessEnv;
const children: ChildProcess[] = [];

async function freePort(): Promise<number> {
  return await new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

function aggjobs(args: string[], ready: RegExp): Promise<void> {
  const child = spawn(process.execPath, [cliEntry, ...args], { env });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`aggjobs ${args.join(' ')} not ready:\n${out}`)), 45_000);
    const check = (c: Buffer): void => {
      out += c.toString();
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', check);
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('exit', (code) => reject(new Error(`aggjobs ${args.join(' ')} exited with ${code}:\n${out}`)));
  });
}

function sh(line: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', line], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  db = await createTestDatabase();
  const port = await freePort();
  env = {
    ...process.env,
    DATABASE_URL: db.url,
    REDIS_URL: testRedisUrl,
    BROKER_KEY_PREFIX: `{aggjobs-api-doc-${randomBytes(4).toString('hex')}}`,
    LOG_LEVEL: 'info',
    LOG_FORMAT: 'json',
    APP_ENV: 'development',
    DASHBOARD_USER: 'ops',
    DASHBOARD_PASSWORD: 'secret',
    D: `http://127.0.0.1:${port}`,
    AUTH: '-u ops:secret',
  };
  // The page's runs: one the beat made, a failed one, a queued one (on a paused queue, so it stays).
  const queued = randomUUID();
  await db.pool.query(
    `INSERT INTO aggjobs.task_runs (id, task, args, state, queue, attempts, finished_at, error) VALUES
       ('hourly_rollup@20261129T130500Z', 'hourly_rollup', '{}', 'succeeded', 'aggregation', 1, now(), NULL),
       ('9d202727-a785-42c8-97f9-0c1e5f0e2b41', 'health_check', '{}', 'failed', 'maintenance', 1, now(), 'from the API doc test')`,
  );
  await db.pool.query(
    `INSERT INTO aggjobs.task_runs (id, task, args, state, queue, attempts) VALUES ($1, 'health_check', '{}', 'queued', 'maintenance', 0)`,
    [queued],
  );
  env.RUN = queued;
  await aggjobs(['dashboard', '--port', String(port)], /dashboard listening/);
  await aggjobs(['worker', '--hostname', '27247@vm', '-c', '2'], /worker \S+ ready/);
}, 120_000);

afterAll(async () => {
  for (const child of children) {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));
  }
});

describe('docs/api.md: every curl example', () => {
  it('finds them', () => {
    expect(curls.length).toBeGreaterThanOrEqual(15);
  });

  it('answers each with 2xx, in the order of the page', async () => {
    for (const line of curls) {
      if (line.includes(' | ')) {
        const result = await sh(line);
        expect(result.code, `${line}\n${result.stdout}\n${result.stderr}`).toBe(0);
        continue;
      }
      // The status after the body, on a line of its own.
      const result = await sh(`${line} -w '\\n%{http_code}'`);
      const status = result.stdout.trim().split('\n').at(-1);
      expect(status, `${line}\n${result.stdout}\n${result.stderr}`).toMatch(/^2\d\d$/);
    }
  }, 300_000);
});
