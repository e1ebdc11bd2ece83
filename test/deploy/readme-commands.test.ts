/**
 * Every `aggjobs …` line of a `sh` block in README.md and docs/*.md, run as written through
 * /bin/sh against a real PostgreSQL and Redis, and checked for what the page says it does (a
 * command there that does not do it is a bug). The `aggjobs` on PATH is this checkout's CLI from its
 * sources. The database starts empty: `aggjobs migrate` builds it. Substitutions, so the test stays
 * bounded and collides with nothing: `<runId>` becomes a real run's id (a failed run to retry, a run
 * stuck on a lock to terminate); the dashboard's port 5555 a free port; the 30-day demo seed a 1-day
 * one of 1,000 executions; `demo traffic --duration 60` 3 s. Long-running commands (worker, beat,
 * dashboard without `--next`) are started, checked while they run (the worker's row, the beat's
 * lease and slots, the dashboard's answers) and must stop cleanly on SIGTERM; the others run to the
 * end with a worker running, each checked by its step in doc-command-effects.ts.
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
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createPool, type Pool } from '../../src/db/index.ts';
import { taskRegistry } from '../../src/tasks/index.ts';
import { cliEntry } from '../support/cli-command.ts';
import { latestSlotAtOrBefore } from '../support/cron-oracle.ts';
import { testRedisUrl } from '../support/redis-url.ts';
import { migrate, oneShotSteps, type Finished, type StepContext } from './doc-command-effects.ts';

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
const schedules = Object.values(taskRegistry).flatMap((t) =>
  t.schedule === undefined ? [] : [{ task: t.name, cron: t.schedule.cron }],
);

let pool: Pool;
let url: string;
let dbName: string;
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

function shell(line: string, extra: NodeJS.ProcessEnv = {}): ReturnType<typeof spawn> {
  // exec: the signal reaches aggjobs itself, not a shell waiting for it.
  return spawn('/bin/sh', ['-c', `exec ${line}`], { env: { ...env, ...extra }, cwd: repo });
}

/** Runs a line to completion. */
function runToEnd(line: string, extra: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = shell(line, extra);
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
      resolve({ code, stdout, stderr, elapsedMs: Date.now() - started });
    });
  });
}

/**
 * Starts a long-running line, waits for its ready line, runs `whileUp` on it, stops it with SIGTERM
 * and awaits a clean exit.
 */
async function runUntilReady(
  line: string,
  ready: RegExp,
  extra: NodeJS.ProcessEnv,
  whileUp: (pid: number, stdout: string) => Promise<void>,
): Promise<Finished & { pid: number }> {
  const started = Date.now();
  const child = shell(line, extra);
  let stdout = '';
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  try {
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
    await whileUp(child.pid ?? 0, stdout);
  } finally {
    child.kill('SIGTERM');
  }
  const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
  if (code === 'hung') child.kill('SIGKILL');
  return {
    code: code === 'hung' ? null : code,
    stdout,
    stderr,
    elapsedMs: Date.now() - started,
    pid: child.pid ?? 0,
  };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface WorkerRow {
  queues: string[];
  concurrency: number;
  stopped_at: Date | null;
}

async function workerRow(pid: number): Promise<WorkerRow | undefined> {
  const { rows } = await pool.query<WorkerRow>(
    'SELECT queues, concurrency, stopped_at FROM aggjobs.workers WHERE pid = $1',
    [pid],
  );
  return rows[0];
}

/** What a worker line promises: its queues (-Q, else both) and concurrency, from its flags. */
function workerPromise(command: string): { queues: string[]; concurrency: [number, number] } {
  const q = /-Q (\S+)/.exec(command)?.[1];
  const n = /--concurrency (\d+)/.exec(command)?.[1];
  const auto = /--autoscale (\d+),(\d+)/.exec(command);
  return {
    queues: q === undefined ? ['aggregation', 'maintenance'] : q.split(','),
    concurrency: auto !== null ? [Number(auto[2]), Number(auto[1])] : [Number(n ?? 0), Number(n ?? Infinity)],
  };
}

async function checkWorker(command: string, pid: number): Promise<() => Promise<void>> {
  const promised = workerPromise(command);
  const row = await until('the worker row', () => workerRow(pid));
  expect(row.queues).toEqual(promised.queues);
  expect(row.concurrency).toBeGreaterThanOrEqual(promised.concurrency[0]);
  expect(row.concurrency).toBeLessThanOrEqual(promised.concurrency[1]);
  expect(row.stopped_at).toBeNull();
  // Once stopped, it says so.
  return async () => expect((await workerRow(pid))?.stopped_at).toBeInstanceOf(Date);
}

/** The beat leads (its lease) and has claimed, per schedule, at least the latest slot before it started. */
async function checkBeat(pid: number, started: Date): Promise<() => Promise<void>> {
  const holder = (): Promise<string | undefined> =>
    pool
      .query<{ holder: string }>('SELECT holder FROM aggjobs.beat_leader WHERE expires_at > now()')
      .then((r) => r.rows[0]?.holder);
  const name = await until('the beat leads', async () => {
    const h = await holder();
    return h?.startsWith(`beat-${pid}@`) === true ? h : undefined;
  });
  await until('a slot of every schedule claimed', async () => {
    const { rows } = await pool.query<{ task: string; slot: Date }>(
      'SELECT task, max(slot) AS slot FROM aggjobs.beat_slots WHERE enqueued GROUP BY task',
    );
    const claimed = new Map(rows.map((r) => [r.task, r.slot.getTime()]));
    return schedules.every(
      (s) => (claimed.get(s.task) ?? 0) >= (latestSlotAtOrBefore(s.cron, started, 'UTC')?.getTime() ?? 0),
    )
      ? true
      : undefined;
  });
  // On SIGTERM it gives its lease up.
  return async () =>
    expect((await pool.query('SELECT 1 FROM aggjobs.beat_leader WHERE holder = $1', [name])).rows).toEqual(
      [],
    );
}

/** The dashboard answers on the port given: its page, and a health report with a reachable database. */
async function checkDashboard(port: number): Promise<void> {
  const page = await fetch(`http://127.0.0.1:${port}/`);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toMatch(/text\/html/);
  const health = await fetch(`http://127.0.0.1:${port}/api/health`);
  expect(health.status).toBe(200);
  const report = (await health.json()) as { checks: { database: { status: string } } };
  expect(report.checks.database.status).toBe('healthy');
}

beforeAll(async () => {
  // An empty database: the docs' first command, `aggjobs migrate`, builds it.
  const adminUrl = inject('pgAdminUrl');
  dbName = `aggjobs_t_${inject('pgTemplate').slice('aggjobs_tpl_'.length)}_readme_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${dbName}"`);
  await admin.end();
  const parsed = new URL(adminUrl);
  parsed.pathname = `/${dbName}`;
  url = parsed.toString();
  pool = createPool({ connectionString: url, max: 4, applicationName: 'aggjobs test' });
  binDir = mkdtempSync(join(tmpdir(), 'aggjobs-bin-'));
  // The installed bin runs compiled JavaScript, as this one does (cli-command.ts).
  writeFileSync(
    join(binDir, 'aggjobs'),
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(cliEntry)} "$@"\n`,
  );
  chmodSync(join(binDir, 'aggjobs'), 0o755);
  env = {
    ...process.env,
    PATH: `${binDir}:${process.env.PATH ?? ''}`,
    DATABASE_URL: url,
    REDIS_URL: testRedisUrl,
    BROKER_KEY_PREFIX: `{aggjobs-readme-${randomBytes(4).toString('hex')}}`,
    LOG_LEVEL: 'info',
    LOG_FORMAT: 'json',
    APP_ENV: 'development',
    ANALYTICS_TIMEZONE: 'UTC',
  };
});

afterAll(async () => {
  rmSync(binDir, { recursive: true, force: true });
  await pool?.end();
  const admin = new pg.Client({ connectionString: inject('pgAdminUrl') });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await admin.end();
});

function context(command: string, extra: Partial<StepContext>): StepContext {
  return {
    pool,
    url,
    repo,
    schedules,
    failedRunId: '',
    workerPid: 0,
    run: async (options = {}) =>
      await runToEnd(substituted(command, options.runId ?? '', 0), options.env ?? {}, 180_000),
    sh: async (line) => await runToEnd(line),
    ...extra,
  };
}

describe('README and docs: every aggjobs command does what its page says', () => {
  it('finds the commands of the README and of the docs it sends readers to, each with a check', () => {
    expect(byFile.get('README.md')).toEqual(
      expect.arrayContaining(['aggjobs migrate', 'aggjobs worker --concurrency 4', 'aggjobs beat']),
    );
    expect(byFile.get('docs/operations.md')?.length).toBeGreaterThanOrEqual(15);
    expect(byFile.get('docs/tasks.md')?.length).toBeGreaterThanOrEqual(10);
    // A documented one-shot line without a step (or a step for a line no page has) is a gap.
    expect(['aggjobs migrate', ...oneShotSteps.map(([c]) => c)].sort()).toEqual(
      all.filter((c) => !longRunning(c)).sort(),
    );
  });

  it('aggjobs migrate builds an empty database: every migration recorded, rollups and views', async () => {
    expect(all).toContain('aggjobs migrate');
    await migrate(context('aggjobs migrate', {}));
  });

  it.each(all.filter(longRunning))(
    '%s starts, does its work, and stops cleanly on SIGTERM',
    async (command) => {
      const port = await freePort();
      const line = substituted(command, '', port);
      const kind = /^aggjobs (\w+)/.exec(command)?.[1];
      const ready =
        kind === 'dashboard'
          ? /dashboard listening/
          : kind === 'beat'
            ? /beat \S+ started/
            : /worker \S+ ready/;
      // --loglevel info must win over the environment's level: its ready line is an info line.
      const extra = /--loglevel info/.test(command) ? { LOG_LEVEL: 'error' } : {};
      const started = new Date();
      let afterStop: () => Promise<void> = async () => undefined;
      const result = await runUntilReady(line, ready, extra, async (pid, stdout) => {
        if (kind === 'worker') {
          afterStop = await checkWorker(command, pid);
          const auto = /--autoscale (\d+),(\d+)/.exec(command);
          // Idle, an autoscaled worker starts at its minimum.
          if (auto !== null) expect(stdout).toMatch(new RegExp(`concurrency ${auto[2]},`));
        } else if (kind === 'beat') afterStop = await checkBeat(pid, started);
        else if (kind === 'dashboard') await checkDashboard(port);
        else throw new Error(`no check for ${command}`);
      });
      expect(result.code, result.stderr).toBe(0);
      if (/--loglevel info/.test(command)) expect(result.stdout).toMatch(/"level":30/);
      await afterStop();
    },
    90_000,
  );

  it('runs every other command as written, with a worker running, each doing what it says', async () => {
    const worker = shell('aggjobs worker --concurrency 2');
    try {
      const workerPid = worker.pid ?? 0;
      // Runs the beats above enqueued: settled before the steps, so each step sees only its own.
      await until(
        'the runs the beats enqueued settle',
        async () =>
          (
            await pool.query(
              "SELECT 1 FROM aggjobs.task_runs WHERE state IN ('queued', 'running', 'retrying')",
            )
          ).rows.length === 0
            ? true
            : undefined,
        60_000,
      );
      // A run that failed a moment ago, to list, to degrade the health report and to retry.
      const failedRunId = randomUUID();
      await pool.query(
        `INSERT INTO aggjobs.task_runs (id, task, args, state, queue, attempts, started_at, finished_at, error)
         VALUES ($1, 'daily_rollup', '{}', 'failed', 'aggregation', 1, now(), now(), 'from the README test')`,
        [failedRunId],
      );
      for (const [command, step] of oneShotSteps) {
        await step(context(command, { failedRunId, workerPid }));
      }
    } finally {
      worker.kill('SIGTERM');
      await new Promise((r) => worker.once('exit', r));
    }
  }, 900_000);
});
