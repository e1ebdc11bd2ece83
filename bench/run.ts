/**
 * `npm run bench -- --size small|full [--runs N] [--cases engine,runtime]` (or parts of either:
 * `--cases user-backfill,new-hour,updates,covering-index,delta-state`; `--cases partitions`: retention by
 * partition drop against batched deletes, bench/partitions.ts): seeds (or reuses) data
 * sets with the workload generator, runs each case several times, and writes a report of medians,
 * min/max and ratios measured in the same run (absolute times on a shared machine are not stable;
 * ratios are). The engine cases measure the rollup engine; the runtime cases the job system around
 * it (broker overhead on Redis and PostgreSQL, beat precision, backfill scaling, worker memory).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import {
  backfillUserForm,
  coveringIndexCases,
  incrementalHour,
  plainMaterializedView,
  scatteredUpdates,
  seedTargets,
  writerLatency,
  type CaseResult,
} from './engine-cases.ts';
import { openDataset } from './datasets.ts';
import { deltaStateCase } from './delta-state-case.ts';
import { runtimeCases, runtimeParts, type RuntimePart } from './runtime-cases.ts';
import { formatMs, formatRatios, summarize } from './stats.ts';

const sizes = {
  small: {
    days: 3,
    executionsPerDay: 20_000,
    workspaces: 100,
    users: 1_000,
    historyDays: 3,
    historyPerDay: 2_000,
    rowsPerHour: 1_000,
    runs: 3,
    pairs: { min: 7, max: 21 },
    writerSeconds: 2,
    coverWriteRounds: 7,
    runtime: {
      latencySamples: 50,
      throughputRuns: 2000,
      beatSlots: 6,
      beatSpeedup: 30,
      backfillDays: 3,
      throughputRounds: 7,
      plainRuns: 10_000,
      memoryRuns: 1000,
      memoryRounds: 3,
    },
  },
  full: {
    days: 30,
    executionsPerDay: 333_334,
    workspaces: 1_000,
    users: 20_000,
    historyDays: 3,
    historyPerDay: 333_334,
    rowsPerHour: 14_000,
    runs: 5,
    pairs: { min: 5, max: 9 },
    writerSeconds: 5,
    coverWriteRounds: 7,
    runtime: {
      latencySamples: 300,
      throughputRuns: 2000,
      beatSlots: 30,
      beatSpeedup: 30,
      backfillDays: 30,
      throughputRounds: 7,
      plainRuns: 10_000,
      memoryRuns: 1000,
      memoryRounds: 3,
    },
  },
} as const;

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: 'small' },
    runs: { type: 'string' },
    cases: { type: 'string', default: 'engine,runtime' },
  },
});
const cases = new Set(values.cases.split(',').map((c) => c.trim()));
if (cases.has('distributed')) {
  // On a Citus cluster of its own, alone (bench/distributed.ts).
  const { runDistributedBench } = await import('./distributed.ts');
  await runDistributedBench({
    size: values.size,
    ...(values.runs === undefined ? {} : { runs: values.runs }),
  });
  process.exit(0);
}
if (cases.has('partitions')) {
  // Retention of one day, partition drop against batched delete, on databases of its own (issue 17).
  const { runPartitionsBench } = await import('./partitions.ts');
  await runPartitionsBench({
    size: values.size,
    ...(values.runs === undefined ? {} : { runs: values.runs }),
  });
  process.exit(0);
}
const isPart = (c: string): c is RuntimePart => (runtimeParts as readonly string[]).includes(c);
/** Parts of the engine cases, to run one alone (a full-size run of all of them takes ~40 minutes). */
const engineParts = [
  'user-backfill',
  'new-hour',
  'updates',
  'covering-index',
  'delta-state',
  'writer',
  'tasks',
] as const;
type EnginePart = (typeof engineParts)[number];
const isEnginePart = (c: string): c is EnginePart => (engineParts as readonly string[]).includes(c);
if (
  cases.size === 0 ||
  [...cases].some((c) => c !== 'engine' && c !== 'runtime' && !isPart(c) && !isEnginePart(c))
) {
  process.stderr.write(
    `--cases must list engine, runtime or parts of them (${[...engineParts, ...runtimeParts].join(', ')}), got "${values.cases}"\n`,
  );
  process.exit(2);
}
const parts = new Set<RuntimePart>(cases.has('runtime') ? runtimeParts : [...cases].filter(isPart));
const engine = new Set<EnginePart>(cases.has('engine') ? engineParts : [...cases].filter(isEnginePart));
const size = values.size === 'full' ? 'full' : values.size === 'small' ? 'small' : undefined;
if (size === undefined) {
  process.stderr.write(`--size must be small or full, got "${values.size}"\n`);
  process.exit(2);
}
const s = sizes[size];
const runs = values.runs === undefined ? s.runs : Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 50) {
  process.stderr.write(`--runs must be an integer from 1 to 50, got "${values.runs}"\n`);
  process.exit(2);
}
// --runs N fixes the number of interleaved pairs of the ratio cases too (else they run until the goal
// is outside the spread, between pairs.min and pairs.max).
const pairs = values.runs === undefined ? s.pairs : { min: runs, max: runs };
const adminUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
const log = (line: string): void =>
  void process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

const started = Date.now();
const dataEnd = new Date('2026-11-01T00:00:00Z');
const main = await openDataset(
  adminUrl,
  `aggjobs_bench_${size}`,
  {
    seed: 1,
    days: s.days,
    executionsPerDay: s.executionsPerDay,
    workspaces: s.workspaces,
    users: s.users,
    end: dataEnd,
  },
  log,
);
const small = await openDataset(
  adminUrl,
  `aggjobs_bench_${size}_history`,
  {
    seed: 2,
    days: s.historyDays,
    executionsPerDay: s.historyPerDay,
    workspaces: s.workspaces,
    users: s.users,
    end: dataEnd,
  },
  log,
);
log(`data: ${main.executions} executions (history case: ${small.executions})`);

const results: CaseResult[] = [];
if (engine.has('user-backfill')) {
  log('case: backfill_aggregations (user form) vs bare GROUP BY');
  results.push(...(await backfillUserForm(main, { end: dataEnd, days: s.days, pairs })));
}
if (engine.has('new-hour') || engine.has('tasks')) {
  log('case: incremental hour');
  const hour = await incrementalHour(main.pool, pairs, s.rowsPerHour);
  results.push(hour.result);
  log('case: history independence');
  const smallHour = await incrementalHour(small.pool, { min: runs, max: runs }, s.rowsPerHour);
  {
    const big = summarize(hour.incremental);
    const little = summarize(smallHour.incremental);
    const ratio = big.median / little.median;
    results.push({
      name: `incremental run after one new hour with ${main.executions} rows of history`,
      measured: big,
      reference: { name: `the same with ${small.executions} rows of history`, summary: little },
      ratio,
      goal: { op: '<=', value: 1.3, text: '≤ 1.3' },
      met: ratio <= 1.3,
    });
  }
  if (engine.has('tasks')) {
    log('case: plain materialized view');
    results.push(await plainMaterializedView(main.pool, runs, hour.incremental));
  }
}
if (engine.has('updates')) {
  log('case: scattered updates');
  results.push(await scatteredUpdates(main.pool, pairs));
}
if (engine.has('covering-index')) {
  log('case: covering index (read gain, write cost)');
  results.push(
    ...(await coveringIndexCases(main.pool, {
      pairs,
      // --runs N below the size's rounds takes N (the CI's smoke run: one round).
      writeRounds: Math.min(s.coverWriteRounds, pairs.max),
      seconds: s.writerSeconds,
    })),
  );
}
if (engine.has('delta-state')) {
  log('case: per-group state (scattered updates)');
  results.push(await deltaStateCase(main.pool, pairs));
}
if (engine.has('writer')) {
  log('case: writer latency');
  results.push(await writerLatency(main.pool, s.writerSeconds));
}
if (engine.has('tasks')) {
  log('case: seed task targets');
  results.push(...(await seedTargets(main.pool, Math.min(runs, 3), dataEnd)));
}
let stopped: string | undefined;
if (parts.size > 0) {
  try {
    // The worker processes of the runtime cases run the build in dist/, as `aggjobs worker` does in
    // production (not tsx): build it from this checkout first.
    log('npm run build');
    execFileSync('npm', ['run', 'build'], { stdio: ['ignore', 'ignore', 'inherit'] });
    for await (const result of runtimeCases(main, s.runtime, dataEnd, log, parts)) results.push(result);
  } catch (error) {
    // The rows measured so far are still reported; the run fails.
    stopped = error instanceof Error ? (error.stack ?? error.message) : String(error);
    log(`runtime cases stopped: ${stopped}`);
    process.exitCode = 1;
  }
}
await main.pool.end();
await small.pool.end();

const ms = formatMs;
const lines = [
  `# aggjobs benchmark — size ${size}`,
  '',
  `Run ${new Date().toISOString()} on ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, PostgreSQL at ${new URL(adminUrl).host}; ${runs} runs per case (engine), ratio cases ${pairs.min}–${pairs.max} interleaved pairs; cases: ${[...cases].join(', ')}; total ${Math.round((Date.now() - started) / 1000)} s.`,
  `Data: ${main.executions.toLocaleString('en')} executions over ${s.days} days (${s.workspaces} workspaces, ${s.users} users) plus activity and credits; history case: ${small.executions.toLocaleString('en')}.`,
  '',
  'Ratio cases with a spread ran interleaved with their reference (the order swapped every other pair); their ratio is the median of the paired ratios, with IQR and min–max; a goal is met or missed at that median, and decided only when it lies outside the IQR.',
  '',
  '| case | measured (median, min–max) | reference (median) | ratio | goal | met |',
  '|---|---|---|---|---|---|',
  ...results.map((r) =>
    [
      r.name,
      r.text?.measured ?? `${ms(r.measured.median)} (${ms(r.measured.min)}–${ms(r.measured.max)})`,
      r.reference === undefined
        ? ''
        : (r.text?.reference ?? `${r.reference.name}: ${ms(r.reference.summary.median)}`),
      r.spread !== undefined ? formatRatios(r.spread) : r.ratio === undefined ? '' : r.ratio.toFixed(3),
      r.goal?.text ?? '',
      verdict(r),
    ]
      .join(' | ')
      .replace(/^/, '| ')
      .replace(/$/, ' |'),
  ),
  '',
  ...(stopped === undefined
    ? []
    : [`**The runtime cases stopped early:** ${stopped.split('\n')[0] ?? ''}`, '']),
  `Repeat: \`npm run bench -- --size ${size} --cases ${[...cases].join(',')}\``,
  '',
];
mkdirSync('bench/results', { recursive: true });
// A run of some cases only writes its own files, and leaves the report of the last full run alone.
const full = cases.has('engine') && cases.has('runtime');
const tag = full ? size : `${size}-${[...cases].join('+')}`;
writeFileSync(
  `bench/results/${tag}.json`,
  JSON.stringify({ size, runs, cases: [...cases], results }, null, 2),
);
writeFileSync(
  full ? (size === 'full' ? 'bench/report.md' : 'bench/report-small.md') : `bench/results/${tag}.md`,
  lines.join('\n'),
);
process.stdout.write(lines.join('\n'));

/**
 * The last column: met or NOT met at the median, or not decided when the goal lies within the
 * IQR of the paired ratios (saying which side the median is on).
 */
function verdict(r: CaseResult): string {
  if (r.met === undefined) return r.note ?? '';
  const within =
    r.spread !== undefined &&
    r.goal !== undefined &&
    r.goal.value >= r.spread.q1 &&
    r.goal.value <= r.spread.q3;
  if (within)
    return `not decided: the goal is within the IQR of the paired ratios (the median ${r.met ? 'meets' : 'misses'} it)`;
  return `${r.met ? 'met' : 'NOT met'}${r.note ? ` — ${r.note}` : ''}`;
}
