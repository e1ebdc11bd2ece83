import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  benchRedisUrl,
  benchRuntime,
  dropNamespace,
  enqueueMany,
  forgetRuns,
  sleep,
  uniqueNamespace,
  waitFor,
  waitForRuns,
  type Backend,
  type BenchDatabase,
} from './runtime-harness.ts';

export interface WorkerMemory {
  /** Resident set of the worker process, KiB: ready and idle, after the runs, and its peak. */
  readyKb: number;
  afterKb: number;
  peakKb: number;
  /** Task threads replaced (WORKER_MAX_TASKS_PER_CHILD), as the worker's last heartbeat reports. */
  recycled: number;
  runs: number;
}

/** VmRSS and VmHWM of a process, KiB (Linux /proc). */
function residentKb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: field('VmRSS'), peak: field('VmHWM') };
}

/**
 * The resident memory of a real `aggjobs worker` process (`node --import tsx src/cli/main.ts worker
 * -c 4 -Q aggregation --max-tasks-per-child N`) after `runs` near-empty runs. The CLI worker loads
 * only the built-in tasks (a `taskModules` switch on it would be a test switch in production), so the
 * run is the cheapest built-in one: `backfill_window` of a backfill that does not exist, whose body is
 * one UPDATE matching no row. Each run still pays what every task pays: its claim and finish, a task
 * thread hand-off, and the run's own pg pool (one connection) in the thread.
 *
 * On PostgreSQL the CLI worker's broker schema is always `bullmq`: the bench database's is dropped
 * before and after.
 */
export async function workerMemory(
  backend: Backend,
  db: BenchDatabase,
  options: { runs: number; maxTasksPerChild: number },
): Promise<WorkerMemory> {
  const namespace = backend === 'redis' ? uniqueNamespace(backend) : 'bullmq';
  if (backend === 'postgres') await dropNamespace(backend, db, namespace);
  const bench = await benchRuntime(backend, db, { namespace });
  // The backend's schema (or keys) exist before the child starts: it does not race to create them.
  await bench.runtime.broker.queue('aggregation').getJobCounts('waiting');
  const name = `bench-memory-${backend}-${options.maxTasksPerChild}-${process.pid}`;
  let stderr = '';
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'worker',
      '-c',
      '4',
      '-Q',
      'aggregation',
      '--max-tasks-per-child',
      String(options.maxTasksPerChild),
      '-n',
      name,
    ],
    {
      env: {
        ...process.env,
        DATABASE_URL: db.url,
        ...(backend === 'redis'
          ? { REDIS_URL: benchRedisUrl, BROKER_KEY_PREFIX: namespace }
          : { REDIS_URL: '', CELERY_BROKER_URL: '' }),
        LOG_LEVEL: 'warn',
      },
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  child.stderr.on('data', (chunk: Buffer) => void (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let ids: string[] = [];
  try {
    const pid = child.pid ?? 0;
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`bench: the worker exited at start: ${stderr}`);
        const { rows } = await db.pool.query(
          'SELECT 1 FROM aggjobs.workers WHERE name = $1 AND stopped_at IS NULL',
          [name],
        );
        return rows.length > 0 ? true : undefined;
      },
      60_000,
      'the worker process starting',
      200,
    );
    await sleep(1000);
    const ready = residentKb(pid);
    ids = await enqueueMany(bench.runtime, 'backfill_window', options.runs, (i) => ({
      backfill_id: `bench: no such backfill ${i}`,
      granularity: 'hourly',
      window_start: '2030-01-01T00:00:00Z',
      window_end: '2030-01-01T01:00:00Z',
    }));
    await waitForRuns(db, ids, 600_000);
    await sleep(1000);
    const after = residentKb(pid);
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(30_000)]);
    const { rows } = await db.pool.query<{ recycled: number }>(
      'SELECT recycled FROM aggjobs.workers WHERE name = $1',
      [name],
    );
    return {
      readyKb: ready.rss,
      afterKb: after.rss,
      peakKb: after.peak,
      recycled: rows[0]?.recycled ?? 0,
      runs: options.runs,
    };
  } finally {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    await bench.dispose();
    await forgetRuns(db, ids);
    await db.pool.query('DELETE FROM aggjobs.workers WHERE name = $1', [name]);
  }
}
