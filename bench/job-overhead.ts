import { wallMs, type NoopResult } from './wall-clock.ts';
import {
  benchRuntime,
  enqueueMany,
  forgetRuns,
  waitForRuns,
  type Backend,
  type BenchDatabase,
} from './runtime-harness.ts';
import { startAggjobsWorker } from './worker-process.ts';

export interface JobOverhead {
  /** Enqueue → start of the task body, ms, one run at a time on an idle worker. */
  latencies: number[];
  /** No-op runs per second through one worker of concurrency 4, from a full queue. */
  throughput: number;
  throughputRuns: number;
}

/**
 * The job system's own cost, with a task that does nothing (bench_noop), on one backend, through a
 * worker process built from `dist/` (aggjobs-worker.mjs: the CLI's worker plus the bench tasks):
 *
 * - latency: `runtime.enqueue()` is called (the run's row is inserted, the job added) and the clock
 *   runs until the task body starts in a task thread of the idle worker (its claim, the thread
 *   hand-off). One run at a time; the caller polls for the result every 50 ms between runs, so the
 *   worker is idle (blocked on the broker) when each run arrives, as a worker between scheduled tasks is.
 * - throughput: `runs` runs are enqueued while the queue is paused, then it is resumed: runs ÷ the time
 *   from the resume to the last run's finish. Every run costs its claim and finish in aggjobs.task_runs
 *   plus the broker's fetch and completion.
 */
export async function jobOverhead(
  backend: Backend,
  db: BenchDatabase,
  options: { samples: number; runs: number },
): Promise<JobOverhead> {
  const bench = await benchRuntime(backend, db);
  const { runtime } = bench;
  // The broker's keys (or schema) exist before the child starts: it does not race to create them.
  await runtime.broker.queue('maintenance').getJobCounts('waiting');
  const name = `bench-overhead-${backend}-${process.pid}`;
  const worker = await startAggjobsWorker(backend, db, {
    name,
    namespace: bench.namespace,
    queues: 'aggregation,maintenance',
    benchTasks: true,
  });
  const ids: string[] = [];
  try {
    // Warm-up: the four task threads start (and load their modules) on their first runs.
    const warm = await enqueueMany(runtime, 'bench_noop', 12, undefined, 12);
    ids.push(...warm);
    await waitForRuns(db, warm, 120_000);

    const latencies: number[] = [];
    for (let i = 0; i < options.samples; i += 1) {
      const enqueuedAt = wallMs();
      const run = await runtime.enqueue('bench_noop', {});
      ids.push(run.id);
      const result = (await run.get({ timeout: 60, interval: 0.05 })) as NoopResult;
      latencies.push(result.startedAt - enqueuedAt);
    }

    const queue = runtime.broker.queue('maintenance');
    await queue.pause();
    const batch = await enqueueMany(runtime, 'bench_noop', options.runs);
    ids.push(...batch);
    const released = Date.now();
    await queue.resume();
    const last = await waitForRuns(db, batch, 600_000);
    const throughput = options.runs / ((last.getTime() - released) / 1000);
    return { latencies, throughput, throughputRuns: options.runs };
  } finally {
    await worker.stop();
    await bench.dispose();
    await forgetRuns(db, ids);
    await db.pool.query('DELETE FROM aggjobs.workers WHERE name = $1', [name]);
  }
}
