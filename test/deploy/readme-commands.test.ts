/**
 * Every `aggjobs …` line of a `sh` block in README.md and docs/*.md, run as written through
 * /bin/sh against a real PostgreSQL and Redis (a command there that does not work is a bug). The
 * `aggjobs` on PATH is this checkout's CLI from its sources. Substitutions, so the test stays
 * bounded and collides with nothing: `<runId>` becomes a real failed run's id; the dashboard's port
 * 5555 a free port; the 30-day demo seed a 1-day one of 1,000 executions; `demo traffic
 * --duration 60` 3 s. Long-running commands (worker, beat, dashboard without `--next`) are started,
 * awaited until ready, and must stop cleanly on SIGTERM; the others run to the end with a worker
 * running and must exit 0 (`aggjobs health`: 0 or 1, degraded by the failed run made here).
 *
 * Other lines of those blocks are run elsewhere: `npm install && npm start` by front-door.test.ts,
 * `npm test` and `npm run bench -- --size small` by .ci/run; the Docker lines need a Docker engine
 * (CI validates the compose file only).
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testRedisUrl } from '../support/redis-url.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const documents = [
  'README.md',
  ...readdirSync(join(repo, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** The `aggjobs` lines of every `sh` block of `file`, without trailing comments. */
function commandsIn(file: string): string[] {
  const text = readFileSync(join(repo, file), 'utf8');
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((m) => (m[1] ?? '').split('\n'))
    .map((l) =>
      l
        .replace(/\s+#\s.*$/, '')
        .trim()
        .replace(/^npx /, ''),
    )
    .filter((l) => l.startsWith('aggjobs '));
}

const byFile = new Map(documents.map((f) => [f, commandsIn(f)]));
const all = [...new Set([...byFile.values()].flat())];
const longRunning = (c: string): boolean =>
  /^aggjobs (worker|beat|dashboard|start)\b/.test(c) && !/--next\b/.test(c);

let db: TestDatabase;
let env: NodeJS.ProcessEnv;
let binDir: string;

async function freePort(): Promise<number> {
  return await new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

/** The line as the test runs it (see the header). */
function substituted(command: string, runId: string, port: number): string {
  return command
    .replaceAll('<runId>', runId)
    .replace('--port 5555', `--port ${port}`)
    .replace('--days 30 --executions-per-day 100000', '--days 1 --executions-per-day 1000')
    .replace('--duration 60', '--duration 3');
}

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

function shell(line: string): ReturnType<typeof spawn> {
  // exec: the signal reaches aggjobs itself, not a shell waiting for it.
  return spawn('/bin/sh', ['-c', `exec ${line}`], { env, cwd: repo });
}

/** Runs a line to completion. */
function runToEnd(line: string, timeoutMs = 120_000): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = shell(line);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${line} did not finish in ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts a long-running line, waits for its ready line, stops it with SIGTERM and awaits a clean exit. */
async function runUntilReady(line: string, ready: RegExp): Promise<Finished> {
  const child = shell(line);
  let stdout = '';
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no "${ready}" from ${line}:\n${stdout}\n${stderr}`)),
      45_000,
    );
    const check = (): void => {
      if (ready.test(stdout)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', (c: Buffer) => ((stdout += c.toString()), check()));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    void exited.then((code) => reject(new Error(`${line} exited with ${code}:\n${stdout}\n${stderr}`)));
  });
  child.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
  if (code === 'hung') child.kill('SIGKILL');
  return { code: code === 'hung' ? null : code, stdout, stderr };
}

beforeAll(async () => {
  db = await createTestDatabase();
  binDir = mkdtempSync(join(tmpdir(), 'aggjobs-bin-'));
  const cli = join(repo, 'src', 'cli', 'main.ts');
  writeFileSync(
    join(binDir, 'aggjobs'),
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(cli)} "$@"\n`,
  );
  chmodSync(join(binDir, 'aggjobs'), 0o755);
  env = {
    ...process.env,
    PATH: `${binDir}:${process.env.PATH ?? ''}`,
    DATABASE_URL: db.url,
    REDIS_URL: testRedisUrl,
    BROKER_KEY_PREFIX: `{aggjobs-readme-${randomBytes(4).toString('hex')}}`,
    LOG_LEVEL: 'info',
    LOG_FORMAT: 'json',
    APP_ENV: 'development',
  };
});

afterAll(() => {
  rmSync(binDir, { recursive: true, force: true });
});

describe('README and docs: every aggjobs command', () => {
  it('finds the commands of the README and of the docs it sends readers to', () => {
    expect(byFile.get('README.md')).toEqual(
      expect.arrayContaining(['aggjobs migrate', 'aggjobs worker --concurrency 4', 'aggjobs beat']),
    );
    expect(byFile.get('docs/operations.md')?.length).toBeGreaterThanOrEqual(15);
    expect(byFile.get('docs/tasks.md')?.length).toBeGreaterThanOrEqual(10);
  });

  it.each(all.filter(longRunning))(
    '%s starts, and stops cleanly on SIGTERM',
    async (command) => {
      const line = substituted(command, '', await freePort());
      const ready = command.startsWith('aggjobs dashboard')
        ? /dashboard listening/
        : command.startsWith('aggjobs beat')
          ? /beat \S+ started/
          : /worker \S+ ready/;
      const result = await runUntilReady(line, ready);
      expect(result.code, result.stderr).toBe(0);
    },
    90_000,
  );

  it('runs every other command as written, with a worker running', async () => {
    const worker = shell('aggjobs worker --concurrency 2');
    try {
      // A failed run to retry and terminate.
      const failed = randomUUID();
      await db.pool.query(
        `INSERT INTO aggjobs.task_runs (id, task, args, state, queue, attempts, finished_at, error)
         VALUES ($1, 'health_check', '{}', 'failed', 'maintenance', 1, now(), 'from the README test')`,
        [failed],
      );
      const port = await freePort();
      for (const command of all.filter((c) => !longRunning(c))) {
        const result = await runToEnd(substituted(command, failed, port), 180_000);
        // health exits 1 when degraded (a failed run in the last hour is a degradation) and 2 when unhealthy.
        const allowed = command.startsWith('aggjobs health') ? [0, 1] : [0];
        expect(allowed, `${command}\n${result.stdout}\n${result.stderr}`).toContain(result.code);
      }
    } finally {
      worker.kill('SIGTERM');
      await new Promise((r) => worker.once('exit', r));
    }
  }, 900_000);
});
