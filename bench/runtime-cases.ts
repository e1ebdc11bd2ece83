import { backfillScaling } from './backfill-scaling.ts';
import { beatPrecision } from './beat-precision.ts';
import type { CaseResult } from './engine-cases.ts';
import { jobOverhead } from './job-overhead.ts';
import { backendName, backends, type Backend, type BenchDatabase } from './runtime-harness.ts';
import { formatMs, percentile, summarize } from './stats.ts';
import { workerMemory } from './worker-memory.ts';

export interface RuntimeSize {
  latencySamples: number;
  throughputRuns: number;
  beatSlots: number;
  beatSpeedup: number;
  backfillDays: number;
  memoryRuns: number;
  maxTasksPerChild: number;
}

const p50p99 = (samples: number[]): string =>
  `p50 ${formatMs(percentile(samples, 50))}, p99 ${formatMs(percentile(samples, 99))} (${samples.length} runs)`;
const mib = (kb: number): string => `${(kb / 1024).toFixed(1)} MiB`;

/** A comparison of the PostgreSQL backend (measured) with Redis (reference): the ratio is PG ÷ Redis. */
function byBackend(
  name: string,
  figures: Record<Backend, number>,
  samples: Record<Backend, number[]>,
  text: Record<Backend, string>,
  note: string,
): CaseResult {
  return {
    name,
    measured: { ...summarize(samples.postgres), median: figures.postgres },
    reference: {
      name: `Redis: ${text.redis}`,
      summary: { ...summarize(samples.redis), median: figures.redis },
    },
    ratio: figures.postgres / figures.redis,
    note,
    text: { measured: `PostgreSQL: ${text.postgres}`, reference: `Redis: ${text.redis}` },
  };
}

/**
 * The runtime half of the benchmark: the job system's overhead on each backend, the beat's
 * precision, a backfill's scaling with workers, and a worker process's memory with and without
 * recycling. Each case runs in its own broker namespace and removes what it added to the database.
 * Yields each row as soon as it is measured, so a failure later keeps the rows before it.
 */
export async function* runtimeCases(
  db: BenchDatabase,
  size: RuntimeSize,
  dataEnd: Date,
  log: (line: string) => void,
): AsyncGenerator<CaseResult> {
  const overhead = {} as Record<Backend, Awaited<ReturnType<typeof jobOverhead>>>;
  for (const backend of backends) {
    log(`case: job overhead on ${backendName[backend]}`);
    overhead[backend] = await jobOverhead(backend, db, {
      samples: size.latencySamples,
      runs: size.throughputRuns,
    });
  }
  const lat = { redis: overhead.redis.latencies, postgres: overhead.postgres.latencies };
  yield byBackend(
    'no-op task: enqueue → task body starts, idle worker (p50; ratio PostgreSQL ÷ Redis)',
    { redis: percentile(lat.redis, 50), postgres: percentile(lat.postgres, 50) },
    lat,
    { redis: p50p99(lat.redis), postgres: p50p99(lat.postgres) },
    `p99 ratio ${(percentile(lat.postgres, 99) / percentile(lat.redis, 99)).toFixed(2)}`,
  );
  const rate = (b: Backend): string =>
    `${overhead[b].throughput.toFixed(0)} tasks/s (${overhead[b].throughputRuns} runs)`;
  yield byBackend(
    'no-op task throughput, 1 worker, concurrency 4 (tasks/s; ratio PostgreSQL ÷ Redis)',
    { redis: overhead.redis.throughput, postgres: overhead.postgres.throughput },
    { redis: [overhead.redis.throughput], postgres: [overhead.postgres.throughput] },
    { redis: rate('redis'), postgres: rate('postgres') },
    'higher is better',
  );

  const beat = {} as Record<Backend, Awaited<ReturnType<typeof beatPrecision>>>;
  for (const backend of backends) {
    log(`case: beat precision on ${backendName[backend]}`);
    beat[backend] = await beatPrecision(backend, db, { slots: size.beatSlots, speedup: size.beatSpeedup });
  }
  const delays = { redis: beat.redis.delays, postgres: beat.postgres.delays };
  yield byBackend(
    `beat: slot time → task body starts (p50; clock ${size.beatSpeedup}× compressed; ratio PostgreSQL ÷ Redis)`,
    { redis: percentile(delays.redis, 50), postgres: percentile(delays.postgres, 50) },
    delays,
    { redis: p50p99(delays.redis), postgres: p50p99(delays.postgres) },
    `slots enqueued: ${beat.redis.enqueued}/${beat.redis.expected} (Redis), ${beat.postgres.enqueued}/${beat.postgres.expected} (PostgreSQL); beat tick 1 s`,
  );

  for (const backend of backends) {
    log(`case: backfill with 1 and 2 workers on ${backendName[backend]}`);
    const scaling = await backfillScaling(backend, db, {
      end: dataEnd,
      days: size.backfillDays,
      workerCounts: [1, 2],
    });
    const one = scaling.byWorkers.get(1) ?? Number.NaN;
    const two = scaling.byWorkers.get(2) ?? Number.NaN;
    yield {
      name: `backfill_aggregations of ${size.backfillDays} days, hourly (${size.backfillDays} windows), 2 workers, broker ${backendName[backend]}`,
      measured: summarize([two]),
      reference: { name: '1 worker', summary: summarize([one]) },
      ratio: two / one,
      note: `speedup with 2 workers ${(one / two).toFixed(2)}×`,
      text: { measured: `2 workers: ${formatMs(two)}`, reference: `1 worker: ${formatMs(one)}` },
    };
  }

  for (const backend of backends) {
    log(`case: worker process memory on ${backendName[backend]}`);
    const on = await workerMemory(backend, db, {
      runs: size.memoryRuns,
      maxTasksPerChild: size.maxTasksPerChild,
    });
    const off = await workerMemory(backend, db, { runs: size.memoryRuns, maxTasksPerChild: 1_000_000_000 });
    yield {
      name: `aggjobs worker process RSS after ${size.memoryRuns} near-no-op runs, recycling on (--max-tasks-per-child ${size.maxTasksPerChild}) vs off, broker ${backendName[backend]}`,
      measured: { median: on.afterKb, min: on.readyKb, max: on.peakKb, runs: 1 },
      reference: {
        name: 'off',
        summary: { median: off.afterKb, min: off.readyKb, max: off.peakKb, runs: 1 },
      },
      ratio: on.afterKb / off.afterKb,
      note: `threads replaced: ${on.recycled} on, ${off.recycled} off`,
      text: {
        measured: `${mib(on.afterKb)} (ready ${mib(on.readyKb)}, peak ${mib(on.peakKb)})`,
        reference: `off: ${mib(off.afterKb)} (ready ${mib(off.readyKb)}, peak ${mib(off.peakKb)})`,
      },
    };
  }
}
