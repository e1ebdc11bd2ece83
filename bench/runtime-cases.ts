import { backfillScaling } from './backfill-scaling.ts';
import { beatPrecision } from './beat-precision.ts';
import type { CaseResult } from './engine-cases.ts';
import { jobOverhead } from './job-overhead.ts';
import { backendName, backends, type Backend, type BenchDatabase } from './runtime-harness.ts';
import { formatMs, percentile, summarize } from './stats.ts';
import { throughputRounds } from './throughput-pairs.ts';
import { workerMemory, type MemorySubject, type WorkerMemory } from './worker-memory.ts';

export interface RuntimeSize {
  latencySamples: number;
  throughputRuns: number;
  beatSlots: number;
  beatSpeedup: number;
  backfillDays: number;
  throughputRounds: number;
  plainRuns: number;
  memoryRuns: number;
  memoryRounds: number;
}

/** The parts of the runtime half; `--cases runtime` runs them all. */
export const runtimeParts = ['overhead', 'throughput', 'beat', 'backfill', 'memory'] as const;
export type RuntimePart = (typeof runtimeParts)[number];

const p50p99 = (samples: number[]): string =>
  `p50 ${formatMs(percentile(samples, 50))}, p99 ${formatMs(percentile(samples, 99))} (${samples.length} runs)`;
const mib = (kb: number): string => `${(kb / 1024).toFixed(1)} MiB`;
const rate = (n: number): string => `${n.toFixed(0)}/s`;
const spread = (samples: number[], show: (n: number) => string): string => {
  const s = summarize(samples);
  return `${show(s.median)} (${show(s.min)}–${show(s.max)}, ${s.runs} rounds)`;
};

/**
 * A goal on a ratio measured in rounds: met when the median meets it; a miss is "by more than the
 * spread" when no round met it.
 */
function ratioGoal(
  ratios: number[],
  goal: { op: '<=' | '>='; value: number; text: string },
): Pick<CaseResult, 'ratio' | 'goal' | 'met' | 'note'> {
  const s = summarize(ratios);
  const meets = (r: number): boolean => (goal.op === '>=' ? r >= goal.value : r <= goal.value);
  const met = meets(s.median);
  const beyond = met ? ratios.every(meets) : !ratios.some(meets);
  return {
    ratio: s.median,
    goal,
    met,
    note: `ratio per round ${s.min.toFixed(3)}–${s.max.toFixed(3)}${beyond ? '' : ' (within the spread)'}`,
  };
}

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
  parts: ReadonlySet<RuntimePart> = new Set(runtimeParts),
): AsyncGenerator<CaseResult> {
  if (parts.has('throughput')) yield* throughputCases(db, size, log);
  if (parts.has('memory')) yield* memoryCases(db, size, log);
  if (parts.has('overhead')) yield* overheadCases(db, size, log);
  if (parts.has('beat')) yield* beatCases(db, size, log);
  if (parts.has('backfill')) yield* backfillCases(db, size, dataEnd, log);
}

async function* throughputCases(
  db: BenchDatabase,
  size: RuntimeSize,
  log: (line: string) => void,
): AsyncGenerator<CaseResult> {
  log(`case: throughput, aggjobs vs plain BullMQ on Redis, ${size.throughputRounds} interleaved rounds`);
  const t = await throughputRounds(
    db,
    { runs: size.throughputRuns, plainRuns: size.plainRuns, rounds: size.throughputRounds },
    log,
  );
  const perRound = (a: number[], b: number[]): number[] => a.map((x, i) => x / (b[i] ?? Number.NaN));
  yield {
    name: `no-op task throughput, 1 built worker process, concurrency 4, Redis (${t.runs} runs a round) ÷ a plain BullMQ worker (concurrency 4, no-op processor, ${t.plainRuns} jobs a round), interleaved`,
    measured: summarize(t.noop),
    reference: { name: 'plain BullMQ', summary: summarize(t.plain) },
    ...ratioGoal(perRound(t.noop, t.plain), { op: '>=', value: 1 / 3, text: '≥ 1/3' }),
    text: {
      measured: `aggjobs: ${spread(t.noop, rate)}`,
      reference: `plain BullMQ: ${spread(t.plain, rate)}`,
    },
  };
  yield {
    name: `PostgreSQL's part alone: runs claimed and finished per second by 4 sessions, one run per statement (no broker, no task), ÷ plain BullMQ, same rounds`,
    measured: summarize(t.ceiling),
    reference: { name: 'plain BullMQ', summary: summarize(t.plain) },
    ratio: summarize(perRound(t.ceiling, t.plain)).median,
    note:
      'no goal: the bound on the no-op ratio above for a runtime that records the claim and the ' +
      'finish of every run durably, one run per statement, at concurrency 4',
    text: {
      measured: `claim + finish: ${spread(t.ceiling, rate)}`,
      reference: `plain BullMQ: ${spread(t.plain, rate)}`,
    },
  };
  yield {
    name: `one-statement task (SELECT 1) throughput ÷ the no-op task's, same worker, same rounds`,
    measured: summarize(t.statement),
    reference: { name: 'no-op', summary: summarize(t.noop) },
    ...ratioGoal(perRound(t.statement, t.noop), { op: '>=', value: 0.8, text: '≥ 0.8' }),
    text: {
      measured: `statement: ${spread(t.statement, rate)}`,
      reference: `no-op: ${spread(t.noop, rate)}`,
    },
  };
}

async function* memoryCases(
  db: BenchDatabase,
  size: RuntimeSize,
  log: (line: string) => void,
): AsyncGenerator<CaseResult> {
  const subjects: MemorySubject[] = ['aggjobs', 'aggjobs-c1', 'plain-threads', 'plain-inline'];
  const seen = new Map<MemorySubject, WorkerMemory[]>(subjects.map((s) => [s, []]));
  for (let round = 0; round < size.memoryRounds; round += 1) {
    const order = round % 2 === 0 ? subjects : [...subjects].reverse();
    for (const subject of order) {
      log(`case: worker process memory, ${subject}, round ${round + 1}`);
      const m = await workerMemory(subject, db, { runs: size.memoryRuns });
      seen.get(subject)?.push(m);
      log(`  ${subject}: ready ${mib(m.readyKb)}, after ${mib(m.afterKb)}, peak ${mib(m.peakKb)}`);
    }
  }
  const after = (s: MemorySubject): number[] => (seen.get(s) ?? []).map((m) => m.afterKb);
  const ready = (s: MemorySubject): number[] => (seen.get(s) ?? []).map((m) => m.readyKb);
  const goalKb = 150 * 1024;
  const aggjobs = summarize(after('aggjobs'));
  const describe = (s: MemorySubject): string =>
    `${spread(after(s), mib)}; ready ${mib(summarize(ready(s)).median)}`;
  yield {
    name: `worker process RSS after ${size.memoryRuns} runs of a task that touches the database, -c 4, Redis: aggjobs (built CLI) vs plain BullMQ with its processor in 4 threads`,
    measured: aggjobs,
    reference: { name: 'plain BullMQ, threads', summary: summarize(after('plain-threads')) },
    ratio: aggjobs.median / summarize(after('plain-threads')).median,
    goal: { op: '<=', value: goalKb, text: '≤ 150 MiB' },
    met: aggjobs.median <= goalKb,
    note: `aggjobs -c 1: ${describe('aggjobs-c1')}; plain BullMQ without threads: ${describe('plain-inline')}${
      aggjobs.median > goalKb && aggjobs.min <= goalKb ? ' (missed within the spread)' : ''
    }`,
    text: {
      measured: `aggjobs: ${describe('aggjobs')}`,
      reference: `plain BullMQ, 4 threads: ${describe('plain-threads')}`,
    },
  };
}

async function* overheadCases(
  db: BenchDatabase,
  size: RuntimeSize,
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
  const perSecond = (b: Backend): string =>
    `${overhead[b].throughput.toFixed(0)} tasks/s (${overhead[b].throughputRuns} runs)`;
  yield byBackend(
    'no-op task throughput, 1 worker, concurrency 4 (tasks/s; ratio PostgreSQL ÷ Redis)',
    { redis: overhead.redis.throughput, postgres: overhead.postgres.throughput },
    { redis: [overhead.redis.throughput], postgres: [overhead.postgres.throughput] },
    { redis: perSecond('redis'), postgres: perSecond('postgres') },
    'higher is better',
  );
}

async function* beatCases(
  db: BenchDatabase,
  size: RuntimeSize,
  log: (line: string) => void,
): AsyncGenerator<CaseResult> {
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
}

async function* backfillCases(
  db: BenchDatabase,
  size: RuntimeSize,
  dataEnd: Date,
  log: (line: string) => void,
): AsyncGenerator<CaseResult> {
  for (const backend of backends) {
    log(`case: backfill with 1 and 2 workers on ${backendName[backend]}`);
    const scaling = await backfillScaling(backend, db, {
      end: dataEnd,
      days: size.backfillDays,
      workerCounts: [1, 2],
      // Windows of a day, so the workers have windows to share (unset: one window of ~30M rows).
      windowDays: '1',
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
}
