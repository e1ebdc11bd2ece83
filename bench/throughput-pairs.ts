import { Queue } from 'bullmq';
import { claimRecordedRuns, finishAttempts } from '../src/runtime/run-ownership.ts';
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
import { startAggjobsWorker, startPlainWorker, type WorkerProcess } from './worker-process.ts';

export interface ThroughputRounds {
  /** Runs per second of each round: aggjobs with bench_noop, with bench_statement, and plain BullMQ. */
  noop: number[];
  statement: number[];
  plain: number[];
  /**
   * PostgreSQL's part alone, no broker and no task: runs claimed and finished per second from 4
   * sessions, one run per statement, as a worker's 4 slots do — the bound on the no-op rate of any
   * runtime that records these two transitions of every run durably.
   */
  ceiling: number[];
  runs: number;
  plainRuns: number;
}

/**
 * Throughput of one aggjobs worker process (built, concurrency 4, Redis) against a plain BullMQ worker
 * process (concurrency 4, no-op processor in its event loop) on the same Redis, in interleaved rounds:
 * each round measures the aggjobs no-op task, the plain worker, the aggjobs one-statement task and
 * PostgreSQL's part alone (the claim and finish statements, from the bench process), in
 * an order that alternates between rounds, so that a change in the machine's load falls on all three.
 *
 * Each measurement: the queue paused, `runs` jobs added, the queue resumed; runs ÷ (the last one's
 * finish − the resume). aggjobs runs are enqueued as users do (`runtime.enqueue`: a row in
 * aggjobs.task_runs, then the job) and their finish is the row's `finished_at`; plain jobs are added
 * with `addBulk` and their finish is BullMQ's `finishedOn`. Both workers run for all the rounds.
 */
export async function throughputRounds(
  db: BenchDatabase,
  options: { runs: number; plainRuns: number; rounds: number },
  log: (line: string) => void,
): Promise<ThroughputRounds> {
  const bench = await benchRuntime('redis', db);
  const { runtime } = bench;
  const plainPrefix = uniqueNamespace('redis');
  const connection = new Redis(benchRedisUrl, { maxRetriesPerRequest: null });
  const plainQueue = new Queue('plain', { connection, prefix: plainPrefix });
  const name = `bench-throughput-${process.pid}`;
  const ids: string[] = [];
  const workers: WorkerProcess[] = [];
  try {
    workers.push(
      await startAggjobsWorker('redis', db, {
        name,
        namespace: bench.namespace,
        queues: 'maintenance',
        benchTasks: true,
      }),
    );
    workers.push(
      await startPlainWorker(db, { queue: 'plain', prefix: plainPrefix, concurrency: 4, mode: 'inline' }),
    );
    const queue = runtime.broker.queue('maintenance');
    const aggjobs = async (task: string, n: number): Promise<number> => {
      await queue.pause();
      const batch = await enqueueMany(runtime, task, n);
      ids.push(...batch);
      const released = Date.now();
      await queue.resume();
      const last = await waitForRuns(db, batch, 600_000);
      return n / ((last.getTime() - released) / 1000);
    };
    const plain = async (n: number): Promise<number> => {
      await plainQueue.pause();
      const opts = { removeOnComplete: { age: 3600, count: 1000 } };
      for (let i = 0; i < n; i += 1000) {
        const size = Math.min(1000, n - i);
        await plainQueue.addBulk(Array.from({ length: size }, () => ({ name: 'noop', data: {}, opts })));
      }
      const released = Date.now();
      await plainQueue.resume();
      await waitFor(
        async () => {
          const c = await plainQueue.getJobCounts('waiting', 'active', 'prioritized', 'failed');
          if ((c.failed ?? 0) > 0) throw new Error(`bench: ${c.failed} plain BullMQ jobs failed`);
          const open = (c.waiting ?? 0) + (c.active ?? 0) + (c.prioritized ?? 0);
          return open === 0 ? true : undefined;
        },
        600_000,
        `${n} plain BullMQ jobs`,
        10,
      );
      const [newest] = await plainQueue.getJobs(['completed'], 0, 0, false);
      return n / (((newest?.finishedOn ?? Date.now()) - released) / 1000);
    };
    const ceiling = async (n: number, round: number): Promise<number> => {
      const prefix = `bench-ceiling-${process.pid}-${round}`;
      await db.pool.query(
        `INSERT INTO aggjobs.task_runs (id, task, args, state, queue)
         SELECT $1 || '-' || g, 'bench_noop', '{}', 'queued', 'maintenance' FROM generate_series(0, $2 - 1) g`,
        [prefix, n],
      );
      ids.push(...Array.from({ length: n }, (_, i) => `${prefix}-${i}`));
      let next = 0;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (next < n) {
            const id = `${prefix}-${next}`;
            next += 1;
            const [claimed] = await claimRecordedRuns(db.pool, [
              { id, worker: name, maxAttempts: 1, leaseMs: 30_000 },
            ]);
            if (claimed?.claim?.kind !== 'run') throw new Error(`bench: ${id} was not claimed`);
            const outcome = { state: 'succeeded' as const, result: { startedAt: 0 }, logs: [] };
            await finishAttempts(db.pool, [{ lease: claimed.claim.lease, outcome }]);
          }
        }),
      );
      return n / ((performance.now() - started) / 1000);
    };
    // Warm-up: the task threads start and load their modules, each pool opens its connections.
    await aggjobs('bench_noop', 40);
    await aggjobs('bench_statement', 40);
    await plain(500);

    const result: ThroughputRounds = {
      noop: [],
      statement: [],
      plain: [],
      ceiling: [],
      runs: options.runs,
      plainRuns: options.plainRuns,
    };
    for (let round = 0; round < options.rounds; round += 1) {
      const steps = [
        async () => void result.noop.push(await aggjobs('bench_noop', options.runs)),
        async () => void result.plain.push(await plain(options.plainRuns)),
        async () => void result.statement.push(await aggjobs('bench_statement', options.runs)),
        async () => void result.ceiling.push(await ceiling(options.runs, round)),
      ];
      if (round % 2 === 1) steps.reverse();
      for (const step of steps) {
        await step();
        await sleep(500);
      }
      log(
        `  round ${round + 1}: aggjobs no-op ${result.noop.at(-1)?.toFixed(0)}/s, statement ` +
          `${result.statement.at(-1)?.toFixed(0)}/s, plain BullMQ ${result.plain.at(-1)?.toFixed(0)}/s, ` +
          `PostgreSQL's part alone ${result.ceiling.at(-1)?.toFixed(0)}/s`,
      );
      await forgetRuns(db, ids.splice(0));
    }
    return result;
  } finally {
    for (const w of workers) await w.stop();
    await plainQueue.close();
    connection.disconnect();
    await bench.dispose();
    await dropNamespace('redis', db, plainPrefix);
    await forgetRuns(db, ids);
    await db.pool.query('DELETE FROM aggjobs.workers WHERE name = $1', [name]);
  }
}
