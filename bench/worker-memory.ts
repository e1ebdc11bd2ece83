import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
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
  type BenchDatabase,
} from './runtime-harness.ts';
import { startAggjobsWorker, startPlainWorker } from './worker-process.ts';

export interface WorkerMemory {
  /** Resident set of the worker process, KiB: ready and idle, after the runs, and its peak. */
  readyKb: number;
  afterKb: number;
  peakKb: number;
  runs: number;
}

export type MemorySubject = 'aggjobs' | 'aggjobs-c1' | 'plain-threads' | 'plain-inline';

/**
 * The resident memory of a worker process after `runs` runs of a task that touches the database, on
 * Redis:
 *
 * - `aggjobs`: the built CLI, `node dist/cli/main.js worker -c 4 -Q aggregation`. The CLI loads only
 *   the built-in tasks (a task-module switch on it would be a test switch in production), so the run
 *   is the cheapest built-in one: `backfill_window` of a backfill that does not exist, whose body is
 *   one statement matching no row, plus what every run costs (claim, finish, its lease).
 * - `aggjobs-c1`: the same with `-c 1` (one task thread): the difference from `-c 4` is what three
 *   task threads cost.
 * - `plain-threads` / `plain-inline`: a plain BullMQ worker of concurrency 4 whose processor runs one
 *   `SELECT 1` through a pg pool, in BullMQ's worker-thread sandbox or in its event loop.
 *
 * RSS is read from /proc when the worker is ready and 1 s after the last run.
 */
export async function workerMemory(
  subject: MemorySubject,
  db: BenchDatabase,
  options: { runs: number; env?: Record<string, string> },
): Promise<WorkerMemory> {
  if (subject === 'aggjobs' || subject === 'aggjobs-c1') {
    return await aggjobsMemory(db, { ...options, concurrency: subject === 'aggjobs' ? 4 : 1 });
  }
  const prefix = uniqueNamespace('redis');
  const connection = new Redis(benchRedisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue('plain', { connection, prefix });
  const worker = await startPlainWorker(db, {
    queue: 'plain',
    prefix,
    concurrency: 4,
    mode: subject === 'plain-threads' ? 'threads' : 'inline',
  });
  try {
    await sleep(1000);
    const ready = worker.resident();
    const opts = { removeOnComplete: { age: 3600, count: 1000 } };
    // Added in batches of the concurrency, as the aggjobs case enqueues, so the threads all start.
    for (let i = 0; i < options.runs; i += 16) {
      const size = Math.min(16, options.runs - i);
      await queue.addBulk(Array.from({ length: size }, () => ({ name: 'statement', data: {}, opts })));
    }
    await waitFor(
      async () => {
        const c = await queue.getJobCounts('waiting', 'active', 'failed');
        if ((c.failed ?? 0) > 0) throw new Error(`bench: ${c.failed} plain BullMQ jobs failed`);
        return (c.waiting ?? 0) + (c.active ?? 0) === 0 ? true : undefined;
      },
      600_000,
      `${options.runs} plain BullMQ jobs`,
      100,
    );
    await sleep(1000);
    const after = worker.resident();
    return { readyKb: ready.rss, afterKb: after.rss, peakKb: after.peak, runs: options.runs };
  } finally {
    await worker.stop();
    await queue.close();
    connection.disconnect();
    await dropNamespace('redis', db, prefix);
  }
}

async function aggjobsMemory(
  db: BenchDatabase,
  options: { runs: number; concurrency: number; env?: Record<string, string> },
): Promise<WorkerMemory> {
  const bench = await benchRuntime('redis', db);
  // The broker's keys exist before the child starts: it does not race to create them.
  await bench.runtime.broker.queue('aggregation').getJobCounts('waiting');
  const name = `bench-memory-${process.pid}-${Date.now()}`;
  let ids: string[] = [];
  const worker = await startAggjobsWorker('redis', db, {
    name,
    namespace: bench.namespace,
    queues: 'aggregation',
    concurrency: options.concurrency,
    benchTasks: false,
    env: options.env,
  });
  try {
    await sleep(1000);
    const ready = worker.resident();
    ids = await enqueueMany(bench.runtime, 'backfill_window', options.runs, (i) => ({
      backfill_id: `bench: no such backfill ${i}`,
      granularity: 'hourly',
      window_start: '2030-01-01T00:00:00Z',
      window_end: '2030-01-01T01:00:00Z',
    }));
    await waitForRuns(db, ids, 600_000);
    await sleep(1000);
    const after = worker.resident();
    return { readyKb: ready.rss, afterKb: after.rss, peakKb: after.peak, runs: options.runs };
  } finally {
    await worker.stop();
    await bench.dispose();
    await forgetRuns(db, ids);
    await db.pool.query('DELETE FROM aggjobs.workers WHERE name = $1', [name]);
  }
}
