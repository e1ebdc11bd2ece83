import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { benchRedisUrl, waitFor, type Backend, type BenchDatabase } from './runtime-harness.ts';

/** The checkout's root: the worker processes run from there (dist/, node_modules). */
const root = fileURLToPath(new URL('..', import.meta.url));

/** VmRSS and VmHWM of a process, KiB (Linux /proc). */
export function residentKb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: field('VmRSS'), peak: field('VmHWM') };
}

/** A worker process the benchmark started. */
export interface WorkerProcess {
  readonly pid: number;
  resident(): { rss: number; peak: number };
  /** SIGTERM, then SIGKILL after 30 s. */
  stop(): Promise<void>;
}

function track(child: ChildProcess): { stderr: () => string; stop: () => Promise<void> } {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => void (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * An aggjobs worker process from the build in `dist/`: the CLI itself (`node dist/cli/main.js worker`,
 * built-in tasks only) or, with `benchTasks`, aggjobs-worker.mjs (the same, plus the bench tasks).
 * Resolves once its row in aggjobs.workers says it is ready.
 */
export async function startAggjobsWorker(
  backend: Backend,
  db: BenchDatabase,
  options: {
    name: string;
    namespace: string;
    queues: string;
    concurrency?: number;
    benchTasks: boolean;
    env?: Record<string, string>;
  },
): Promise<WorkerProcess> {
  const entry = options.benchTasks ? 'bench/aggjobs-worker.mjs' : 'dist/cli/main.js';
  const args = [
    entry,
    ...(options.benchTasks ? [] : ['worker']),
    ...['-c', String(options.concurrency ?? 4), '-Q', options.queues, '-n', options.name],
  ];
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      DATABASE_URL: db.url,
      ...(backend === 'redis'
        ? { REDIS_URL: benchRedisUrl, BROKER_KEY_PREFIX: options.namespace }
        : { REDIS_URL: '', CELERY_BROKER_URL: '' }),
      BENCH_NAMESPACE: options.namespace,
      LOG_LEVEL: 'warn',
      ...options.env,
    },
    cwd: root,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const tracked = track(child);
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null)
          throw new Error(`bench: the worker exited at start: ${tracked.stderr()}`);
        const { rows } = await db.pool.query(
          'SELECT 1 FROM aggjobs.workers WHERE name = $1 AND stopped_at IS NULL',
          [options.name],
        );
        return rows.length > 0 ? true : undefined;
      },
      60_000,
      'the worker process starting',
      100,
    );
  } catch (error) {
    await tracked.stop();
    throw error;
  }
  return { pid: child.pid ?? 0, resident: () => residentKb(child.pid ?? 0), stop: tracked.stop };
}

/** A plain BullMQ worker process (plain-bullmq-worker.mjs) on the bench Redis; resolves once it fetches. */
export async function startPlainWorker(
  db: BenchDatabase,
  options: { queue: string; prefix: string; concurrency: number; mode: 'inline' | 'threads' },
): Promise<WorkerProcess> {
  const child = spawn(
    process.execPath,
    [
      'bench/plain-bullmq-worker.mjs',
      options.queue,
      options.prefix,
      String(options.concurrency),
      options.mode,
    ],
    {
      env: { ...process.env, BENCH_REDIS_URL: benchRedisUrl, DATABASE_URL: db.url },
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const tracked = track(child);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('ready')) resolve();
    });
    child.once('exit', () => reject(new Error(`bench: the plain worker exited: ${tracked.stderr()}`)));
  });
  return { pid: child.pid ?? 0, resident: () => residentKb(child.pid ?? 0), stop: tracked.stop };
}
