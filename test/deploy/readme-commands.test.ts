/**
 * Every `aggjobs …` command of the README's "Running in production" and "Troubleshooting" sections,
 * run as written against a real PostgreSQL and Redis (a command there that does not work is a bug).
 * Substitutions: `<runId>` becomes a real run id, and the dashboard's port 5555 a free port, so the
 * test never collides with a dashboard already running on the machine.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { testRedisUrl } from '../support/redis-url.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The `aggjobs` lines of the shell blocks between two headings. */
function commandsOf(fromHeading: string, toHeading: string): string[] {
  const start = readme.indexOf(`## ${fromHeading}`);
  const end = readme.indexOf(`## ${toHeading}`, start + 1);
  if (start < 0 || end < 0) throw new Error(`README sections ${fromHeading} … ${toHeading} not found`);
  const section = readme.slice(start, end);
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  return blocks
    .flatMap((b) => b.split('\n'))
    .map((l) => l.trim())
    .filter((l) => l.startsWith('aggjobs '));
}

const production = commandsOf('Running in production', 'Troubleshooting');
const troubleshooting = commandsOf('Troubleshooting', 'Demo data and live traffic');
const longRunning = /^aggjobs (worker|beat|dashboard)\b/;

let db: TestDatabase;
let env: NodeJS.ProcessEnv;

async function freePort(): Promise<number> {
  return await new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

function argv(command: string): string[] {
  return command.split(/\s+/).slice(1);
}

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion. */
function runToEnd(args: string[], timeoutMs = 60_000): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`aggjobs ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts a long-running command, waits for its ready line, stops it with SIGTERM and awaits a clean exit. */
async function runUntilReady(args: string[], ready: RegExp): Promise<Finished> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { env });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no "${ready}" from aggjobs ${args.join(' ')}:\n${stdout}\n${stderr}`)),
      45_000,
    );
    const check = (): void => {
      if (ready.test(stdout)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', (c: Buffer) => ((stdout += c.toString()), check()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    void exited.then((code) =>
      reject(new Error(`aggjobs ${args.join(' ')} exited with ${code}:\n${stdout}\n${stderr}`)),
    );
  });
  child.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
  if (code === 'hung') child.kill('SIGKILL');
  return { code: code === 'hung' ? null : code, stdout, stderr };
}

beforeAll(async () => {
  db = await createTestDatabase();
  env = {
    ...process.env,
    DATABASE_URL: db.url,
    REDIS_URL: testRedisUrl,
    BROKER_KEY_PREFIX: `{aggjobs-readme-${randomBytes(4).toString('hex')}}`,
    LOG_LEVEL: 'info',
    APP_ENV: 'development',
  };
});

describe('README: Running in production', () => {
  it('lists the commands this test runs', () => {
    expect(production).toEqual(expect.arrayContaining(['aggjobs migrate', 'aggjobs beat --loglevel info']));
    expect(troubleshooting.length).toBeGreaterThanOrEqual(8);
  });

  it.each(production.filter((c) => !longRunning.test(c)))('%s', async (command) => {
    const result = await runToEnd(argv(command));
    expect(result.code, result.stderr).toBe(0);
  });

  it.each(production.filter((c) => longRunning.test(c)))(
    '%s starts, and stops cleanly on SIGTERM',
    async (command) => {
      const port = await freePort();
      const args = argv(command.replace('--port 5555', `--port ${port}`));
      const ready = command.startsWith('aggjobs dashboard')
        ? /dashboard listening/
        : command.startsWith('aggjobs beat')
          ? /beat \S+ started/
          : /worker \S+ ready/;
      const result = await runUntilReady(args, ready);
      expect(result.code, result.stderr).toBe(0);
    },
    90_000,
  );
});

describe('README: Troubleshooting', () => {
  it('runs every command, with a worker running', async () => {
    const worker = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'worker', '--concurrency', '2'],
      { env },
    );
    try {
      // A failed run to retry, and a queued one (on a paused queue) to terminate.
      const failed = randomUUID();
      await db.pool.query(
        `INSERT INTO aggjobs.task_runs (id, task, args, state, queue, attempts, finished_at, error)
         VALUES ($1, 'health_check', '{}', 'failed', 'maintenance', 1, now(), 'from the README test')`,
        [failed],
      );
      for (const command of troubleshooting) {
        const args = argv(command.replace('<runId>', failed));
        const result = await runToEnd(args, 120_000);
        // health exits 1 when degraded (a failed run in the last hour is a degradation) and 2 when unhealthy.
        const allowed = command.startsWith('aggjobs health') ? [0, 1] : [0];
        expect(allowed, `${command}\n${result.stdout}\n${result.stderr}`).toContain(result.code);
      }
    } finally {
      worker.kill('SIGTERM');
      await new Promise((r) => worker.once('exit', r));
    }
  }, 300_000);
});
