/**
 * `npm run bench -- --cases distributed [--size small|full] [--runs N]`: the rollup engine on a Citus
 * cluster of its own (a coordinator and two workers, all on this machine: test/support/citus-cluster.ts),
 * issue 13. Ratios are medians of interleaved pairs with their spread (bench/stats.ts); the absolute
 * times are not a cluster's (three servers share this machine's cores), the ratios show the shape.
 * Writes bench/results/<size>-distributed.{md,json}. Parts: backfill, new-hour, updates, views (the
 * seed's three views on Citus, bench/distributed-views.ts), workers (1 against 2); all by default,
 * or some with DISTRIBUTED_PARTS=new-hour,views (then the report's name says which).
 * DISTRIBUTED_NEW_HOUR_PAIRS sets the new hour's pairs alone (a case of about a second a pair, whose
 * spread needs more pairs than the others'); DISTRIBUTED_NEW_HOUR_HISTORY=N first adds N hours and
 * analyzes the source (its statistics as autovacuum leaves them in steady state).
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { parseSettings } from '../src/config/index.ts';
import { createPool, type Pool } from '../src/db/index.ts';
import {
  builtinRollups,
  prepareDatabase,
  refreshRollup,
  type RefreshResult,
  type RollupDefinition,
} from '../src/rollups/index.ts';
import { createCitusDatabase, startCitusCluster } from '../test/support/citus-cluster.ts';
import { cpuBetween, generateEvents, insertEventHour, refreshCpu, viewsCase } from './distributed-views.ts';
import {
  formatMs,
  formatRatios,
  interleavedPairs,
  pairedRatios,
  summarize,
  timed,
  type PairedRatios,
} from './stats.ts';

const ZONE = 'UTC';
const DAY = 86_400_000;
// The data ends a day before now, on the hour: mv_workspace_summary reads the last 30 days from now.
const END = Math.floor(Date.now() / 3_600_000) * 3_600_000 - DAY;
const sizes = {
  small: { rows: 300_000, workspaces: 50, days: 30, pairs: 5 },
  full: { rows: 3_000_000, workspaces: 200, days: 30, pairs: 7 },
} as const;

const DATABASE = 'aggjobs_bench_distributed';
const PARTS = ['backfill', 'new-hour', 'updates', 'views', 'workers'] as const;

interface RunFigures {
  wall: number;
  /** Each node's own time: its transaction's work, from its start to its commit (excluded). */
  nodeMs: number[];
  /** CPU seconds of each worker's refresh sessions during the run (/proc). */
  cpu: number[];
  groups: number;
}
interface WorkerFigures {
  updates: RunFigures[];
  full: RunFigures[];
  groups: number[];
  nodes: number;
}

/** The 1-against-2-workers table: medians of wall time, the slowest node's time, and CPU per node. */
function workerLines(two: WorkerFigures, one: WorkerFigures, pairs: number): string[] {
  const med = (xs: number[]): number => summarize(xs).median;
  const row = (name: string, a: RunFigures[], b: RunFigures[]): string[] => {
    const wall = [med(a.map((r) => r.wall)), med(b.map((r) => r.wall))];
    const slowest = [med(a.map((r) => Math.max(...r.nodeMs))), med(b.map((r) => Math.max(...r.nodeMs)))];
    const cpuA = [0, 1].map((i) => med(a.map((r) => r.cpu[i] ?? 0)));
    const cpuB = [0, 1].map((i) => med(b.map((r) => r.cpu[i] ?? 0)));
    const cpu = (c: number[]): string => c.map((x) => `${(x * 1000).toFixed(0)} ms`).join(' + ');
    return [
      `| ${name}: wall time of the run | ${formatMs(wall[0] ?? 0)} | ${formatMs(wall[1] ?? 0)} | ${((wall[1] ?? 0) / (wall[0] ?? 1)).toFixed(2)} |`,
      `| ${name}: the slowest node's own time | ${formatMs(slowest[0] ?? 0)} | ${formatMs(slowest[1] ?? 0)} | ${((slowest[1] ?? 0) / (slowest[0] ?? 1)).toFixed(2)} |`,
      `| ${name}: CPU of the refresh sessions, worker 1 + worker 2 | ${cpu(cpuA)} | ${cpu(cpuB)} | |`,
    ];
  };
  return [
    `| per-node refresh (median of ${pairs} runs each) | 2 workers | 1 worker | 1 ÷ 2 |`,
    '|---|---|---|---|',
    ...row(
      `incremental after 1,000 updates (${med(two.updates.map((r) => r.groups))} groups)`,
      two.updates,
      one.updates,
    ),
    ...row('every shard recomputed on its node (first run)', two.full, one.full),
  ];
}

const log = (line: string): void =>
  void process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

const hourly = builtinRollups.find((d) => d.name === 'execution_metrics_hourly') as RollupDefinition;

// The plain GROUP BY of the hourly execution metrics as a user would write it, with the rollup's own
// measures ($1 zone, $2/$3 range): its result rows come back to the client, as the groups of a window
// refresh come to the coordinator.
const BARE_GROUP_BY = `
SELECT date_trunc('hour', started_at, $1) AS bucket_start, workspace_id,
  ${hourly.measures.map((m) => `${m.sql} AS ${m.name}`).join(',\n  ')}
FROM public.execution_logs WHERE started_at >= $2 AND started_at < $3 GROUP BY 1, 2`;

/**
 * The same GROUP BY stored as a user would store it, one statement: `CREATE TEMP TABLE … AS`, on a
 * session with the refresh's work_mem (64MB). Only that statement is timed (the table is dropped
 * after, untimed): nothing around it is counted against the reference.
 */
async function bareIntoTable(pool: Pool, range: [string, Date, Date]): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query(`SET work_mem = '64MB'`);
    const started = performance.now();
    await client.query(`CREATE TEMP TABLE bench_bare AS ${BARE_GROUP_BY}`, range);
    const ms = performance.now() - started;
    await client.query('DROP TABLE bench_bare; RESET work_mem');
    return ms;
  } finally {
    client.release();
  }
}

async function generate(pool: Pool, rows: number, workspaces: number, days: number, seed = 0): Promise<void> {
  const start = END - days * DAY;
  const chunk = 100_000;
  for (let done = 0; done < rows; done += chunk) {
    const n = Math.min(chunk, rows - done);
    await pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       SELECT ws, ws * 20 + g % 20, (g * 31) % 40,
              (ARRAY['success','success','success','failed','timeout','cancelled'])[1 + (g % 6)],
              to_timestamp($3 + (g * 2654435761 % ($4::bigint * 1000)) / 1000.0), (g * 37) % 60000, (g % 100) / 4.0
       FROM (SELECT g, 1 + (g * 7919) % $2 AS ws FROM generate_series($1::bigint + 1, $1::bigint + $5) g) x`,
      [done + seed * rows, workspaces, start / 1000, days * 86_400, n],
    );
  }
}

const incremental = (pool: Pool): Promise<RefreshResult> =>
  refreshRollup(pool, hourly, { timezone: ZONE, mode: { kind: 'incremental' } });
const windowAll = (pool: Pool, days: number): Promise<RefreshResult> =>
  refreshRollup(pool, hourly, {
    timezone: ZONE,
    mode: { kind: 'window', start: new Date(END - days * DAY), end: new Date(END) },
  });

/**
 * The rollup shards' statistics as the planner on their nodes sees them: reltuples (-1: not
 * analyzed since the shard was created or truncated) and the last ANALYZE, manual or automatic.
 */
async function rollupShardStatistics(pool: Pool): Promise<string> {
  const { rows } = await pool.query<{ result: string }>(
    `SELECT result FROM run_command_on_shards($1, $$
       SELECT c.reltuples::bigint || ' rows, analyzed ' || coalesce(to_char(greatest(s.last_analyze, s.last_autoanalyze), 'HH24:MI:SS'), 'never')
       FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = '%s'::regclass $$)
     ORDER BY shardid`,
    [`analytics.${hourly.name}`],
  );
  return rows.map((r) => r.result).join('; ');
}

/** Moves every shard group from one worker to the other (co-located shards move together). */
async function moveAll(pool: Pool, from: number, to: number): Promise<void> {
  const { rows } = await pool.query<{ shardid: string }>(
    `SELECT s.shardid::text AS shardid FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
     JOIN pg_dist_node n USING (groupid)
     WHERE s.logicalrelid = 'public.execution_logs'::regclass AND n.nodeport = $1`,
    [from],
  );
  for (const r of rows)
    await pool.query(
      `SELECT citus_move_shard_placement($1::bigint, '127.0.0.1', $2, '127.0.0.1', $3, shard_transfer_mode => 'block_writes')`,
      [r.shardid, from, to],
    );
  // The moved-away placements are dropped by Citus's deferred cleanup; do it now. A moved shard is a
  // new table without statistics until autovacuum gets to it: analyzed now, as before the 2-worker runs.
  await pool.query('CALL citus_cleanup_orphaned_resources()');
  await pool.query(`ANALYZE public.execution_logs, analytics.${hourly.name}`);
}

export async function runDistributedBench(options: { size: string; runs?: string }): Promise<void> {
  const size = options.size === 'full' ? 'full' : 'small';
  const s = sizes[size];
  const pairs = options.runs === undefined ? s.pairs : Number(options.runs);
  const started = Date.now();
  log(`distributed bench (${size}): starting a Citus cluster`);
  const cluster = await startCitusCluster();
  const ports = {
    coordinatorPort: cluster.coordinator.port,
    workerPorts: cluster.workers.map((w) => w.port),
  };
  const url = await createCitusDatabase(ports, DATABASE);
  const pool = createPool({ connectionString: url, max: 4, applicationName: 'aggjobs bench distributed' });
  const lines: string[] = [];
  const loads: string[] = [];
  const notes: string[] = [];
  const only = process.env.DISTRIBUTED_PARTS;
  const parts = new Set<string>(only === undefined ? PARTS : only.split(','));
  const results: Record<string, unknown> = {};
  const ratioLine = (name: string, goal: string, r: PairedRatios, m: number[], ref: number[]): void => {
    results[name] = { ratios: r, measured: m, reference: ref };
    lines.push(
      `| ${name} | ${formatMs(summarize(m).median)} | ${formatMs(summarize(ref).median)} | ${formatRatios(r)} | ${goal} |`,
    );
  };
  try {
    await prepareDatabase(pool, parseSettings({}));
    log(`generating ${s.rows} execution rows over ${s.days} days, ${s.workspaces} workspaces`);
    await generate(pool, s.rows, s.workspaces, s.days);
    await pool.query('ANALYZE public.execution_logs');
    const first = await incremental(pool);
    log(`initial per-node refresh: ${first.durationMs} ms, ${first.rowsWritten} rows`);
    const range: [string, Date, Date] = [ZONE, new Date(END - s.days * DAY), new Date(END)];
    const load = (): string =>
      loadavg()
        .map((l) => l.toFixed(1))
        .join(' ');
    const caseLoad = (name: string): void => {
      loads.push(`${name}: ${load()}`);
    };

    if (parts.has('backfill')) {
      log('backfill (window refresh through the coordinator) ÷ bare GROUP BY');
      const backfill = await interleavedPairs({
        minPairs: pairs,
        maxPairs: pairs,
        before: () => pool.query(`TRUNCATE analytics.${hourly.name}`),
        measure: () => windowAll(pool, s.days),
        reference: () => pool.query(BARE_GROUP_BY, range),
      });
      ratioLine(
        'backfill of all hourly execution metrics (window refresh, into an empty rollup) ÷ bare GROUP BY',
        '≤ 1.5',
        backfill.ratios,
        backfill.measured,
        backfill.reference,
      );
      caseLoad('backfill');

      log(
        'backfill per node (the first incremental run: every shard recomputed on its node) ÷ bare GROUP BY',
      );
      const perNode = await interleavedPairs({
        minPairs: pairs,
        maxPairs: pairs,
        before: async () => {
          await pool.query(`TRUNCATE analytics.${hourly.name}`);
          await pool.query(
            'UPDATE aggjobs.rollup_state SET snapshot = NULL, horizon = NULL WHERE rollup = $1',
            [hourly.name],
          );
        },
        measure: () => incremental(pool),
        reference: () => pool.query(BARE_GROUP_BY, range),
      });
      ratioLine(
        'backfill per node (first incremental run, into an empty rollup) ÷ bare GROUP BY',
        '≤ 1.5',
        perNode.ratios,
        perNode.measured,
        perNode.reference,
      );
      caseLoad('backfill per node');
    }

    // New hours follow the data; each case that adds some takes the next ones.
    let hour = 0;
    const perHour = Math.round(s.rows / (s.days * 24));
    const nextHour = (): number => {
      hour += 1;
      return END + (hour - 1) * 3_600_000;
    };
    const insertHour = (at: number): Promise<unknown> =>
      pool.query(
        `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
         SELECT ws, ws * 20 + g % 20, (g * 31) % 40, 'success', to_timestamp($2 + (g % 3600)), (g * 37) % 60000, (g % 100) / 4.0
         FROM (SELECT g, 1 + (g * 7919) % $1 AS ws FROM generate_series(1, $3) g) x`,
        [s.workspaces, at / 1000, perHour],
      );

    if (parts.has('new-hour')) {
      log('incremental after one new hour ÷ bare GROUP BY of that hour (into a table, and to the client)');
      const newHourPairs = Number(process.env.DISTRIBUTED_NEW_HOUR_PAIRS ?? pairs);
      // DISTRIBUTED_NEW_HOUR_HISTORY=N: N hours inserted and refreshed first (untimed), then the source
      // analyzed, as autovacuum leaves a source that takes a new hour every hour: its stamps' statistics
      // then cover more than the seed's 30 transactions, and a new hour's estimates are no longer 1 row.
      const history = Number(process.env.DISTRIBUTED_NEW_HOUR_HISTORY ?? 0);
      if (history > 0) {
        for (let i = 0; i < history; i += 1) {
          await insertHour(nextHour());
          await incremental(pool);
        }
        await pool.query('ANALYZE public.execution_logs');
        notes.push(
          `New hour: ${history} hours inserted and refreshed before it (untimed), then the source analyzed.`,
        );
      }
      // After the backfill cases the rollup was just truncated and refilled: its shards have no
      // statistics until autovacuum analyzes them, as after a user's backfill. Said in the report.
      const statistics = await rollupShardStatistics(pool);
      log(`rollup shards at the start (${new Date().toISOString().slice(11, 19)}): ${statistics}`);
      // Interleaved: the order of the three swapped every other pair. The run is timed whole, as its
      // caller waits for it (lock, state, the nodes' work and commits, the state update, unlock).
      const measured: number[] = [];
      const intoTable: number[] = [];
      const toClient: number[] = [];
      for (let i = 0; i < newHourPairs; i += 1) {
        const at = nextHour();
        await insertHour(at);
        const hourRange: [string, Date, Date] = [ZONE, new Date(at), new Date(at + 3_600_000)];
        const refs = async (): Promise<void> => {
          intoTable.push(await bareIntoTable(pool, hourRange));
          toClient.push(await timed(() => pool.query(BARE_GROUP_BY, hourRange)));
        };
        if (i % 2 === 0) await refs();
        measured.push(await timed(() => incremental(pool)));
        if (i % 2 === 1) await refs();
      }
      ratioLine(
        `incremental run after one new hour (${perHour} rows) ÷ bare GROUP BY of that hour, CREATE TEMP TABLE … AS`,
        '≤ 2.5',
        pairedRatios(measured, intoTable),
        measured,
        intoTable,
      );
      // The first to read a new hour's rows after their insert pays more (on this 2-core machine about
      // twice the warm time, for either side): split by which side ran first, pairs alternate.
      for (const [first, label] of [
        [1, 'the refresh first after the insert'],
        [0, 'the GROUP BY first after the insert'],
      ] as const) {
        const at = measured.map((_, i) => i).filter((i) => i % 2 === first);
        const m = at.map((i) => measured[i] ?? Number.NaN);
        const ref = at.map((i) => intoTable[i] ?? Number.NaN);
        ratioLine(`… the same, pairs with ${label}`, '', pairedRatios(m, ref), m, ref);
      }
      ratioLine(
        '… the same runs ÷ the same GROUP BY returning its rows to the client (the reference before)',
        '',
        pairedRatios(measured, toClient),
        measured,
        toClient,
      );
      // Like for like: each side the first to read a new hour of its own, as the hourly refresh and a
      // user's GROUP BY of a new hour both are. Two hours a pair, in alternating order: one refreshed
      // (timed), one grouped into a table (timed) and then refreshed (untimed, to fold it in).
      const firstRefresh: number[] = [];
      const firstGroupBy: number[] = [];
      for (let i = 0; i < newHourPairs; i += 1) {
        const refreshSide = async (): Promise<void> => {
          await insertHour(nextHour());
          firstRefresh.push(await timed(() => incremental(pool)));
        };
        const groupBySide = async (): Promise<void> => {
          const at = nextHour();
          await insertHour(at);
          firstGroupBy.push(await bareIntoTable(pool, [ZONE, new Date(at), new Date(at + 3_600_000)]));
          await incremental(pool);
        };
        if (i % 2 === 0) {
          await refreshSide();
          await groupBySide();
        } else {
          await groupBySide();
          await refreshSide();
        }
      }
      ratioLine(
        `incremental run after one new hour (${perHour} rows) ÷ bare GROUP BY of another new hour, CREATE TEMP TABLE … AS, each the first to read its hour`,
        '≤ 2.5',
        pairedRatios(firstRefresh, firstGroupBy),
        firstRefresh,
        firstGroupBy,
      );
      notes.push(`New hour: the rollup shards' statistics when the case began: ${statistics}.`);
      caseLoad('new hour');
    }

    const { rows: ids } = await pool.query<{ ws: number; id: string }>(
      'SELECT workspace_id AS ws, id::text AS id FROM public.execution_logs ORDER BY random() LIMIT 20000',
    );
    let round = 0;
    const updates = async (): Promise<void> => {
      const batch = ids.slice((round * 1000) % ids.length, ((round * 1000) % ids.length) + 1000);
      round += 1;
      await pool.query(
        `UPDATE public.execution_logs SET duration_ms = duration_ms + 1
         WHERE (workspace_id, id) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))`,
        [batch.map((b) => b.ws), batch.map((b) => b.id)],
      );
    };
    if (parts.has('updates')) {
      log('incremental after 1,000 updates over 30 days ÷ full recompute');
      const scattered = await interleavedPairs({
        minPairs: pairs,
        maxPairs: pairs,
        before: updates,
        measure: () => incremental(pool),
        reference: () => windowAll(pool, s.days + 1),
      });
      ratioLine(
        'incremental run after 1,000 updates spread over 30 days ÷ full recompute (window refresh of all days)',
        '≤ 0.05',
        scattered.ratios,
        scattered.measured,
        scattered.reference,
      );
      caseLoad('updates');
    }

    if (parts.has('views')) {
      log(`the three views: ${Math.round(s.rows / 5)} activity events, then refreshes and reads`);
      await generateEvents(pool, {
        rows: Math.round(s.rows / 5),
        workspaces: s.workspaces,
        days: s.days,
        end: END,
      });
      const views = await viewsCase(pool, {
        zone: ZONE,
        pairs,
        workspaces: s.workspaces,
        firstHour: END + 100 * 3_600_000,
        insertHour: async (at) => {
          await insertHour(at);
          await insertEventHour(pool, at, Math.round(perHour / 5), s.workspaces);
        },
      });
      lines.push(...views.lines);
      Object.assign(results, views.results);
      caseLoad('views');
    }

    if (parts.has('workers')) {
      // 1 worker against 2: the same work, with every shard on one worker, then back on two. Per
      // run: its wall time, each node's own time (its transaction's work) and each node's CPU.
      log('per-node refresh with 2 workers, then with every shard on one worker');
      const workerUrls = ports.workerPorts.map((port) => `postgres://postgres@127.0.0.1:${port}/${DATABASE}`);
      const workload = async (): Promise<WorkerFigures> => {
        const figures: WorkerFigures = { updates: [], full: [], groups: [], nodes: 0 };
        // One run to fold in what the move left (a moved shard is recomputed whole once).
        await incremental(pool);
        const run = async (into: RunFigures[]): Promise<void> => {
          const before = await refreshCpu(workerUrls);
          const started = performance.now();
          const r = await incremental(pool);
          const wall = performance.now() - started;
          const cpu = cpuBetween(before, await refreshCpu(workerUrls));
          into.push({
            wall,
            nodeMs: (r.nodes ?? []).map((n) => n.durationMs),
            cpu,
            groups: r.groupsRecomputed,
          });
          figures.nodes = r.nodes?.length ?? 0;
        };
        for (let i = 0; i < pairs; i += 1) {
          await updates();
          await run(figures.updates);
          await pool.query(
            'UPDATE aggjobs.rollup_state SET snapshot = NULL, horizon = NULL WHERE rollup = $1',
            [hourly.name],
          );
          await run(figures.full);
        }
        return figures;
      };
      await pool.query(`ANALYZE public.execution_logs, analytics.${hourly.name}`);
      const two = await workload();
      const [w1, w2] = ports.workerPorts as [number, number];
      await moveAll(pool, w2, w1);
      const one = await workload();
      await moveAll(pool, w1, w2);
      results.workers = { two, one };
      lines.push('', ...workerLines(two, one, pairs));
      caseLoad('workers');
    }
  } finally {
    await pool.end();
    await cluster.stop();
  }
  const report = [
    `# Distributed benchmark (${size})`,
    '',
    `Run ${new Date().toISOString()} on ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB: a Citus 13.2.2 cluster of a coordinator and two workers, all on this machine (citus.shard_count 4, so 2 shards per worker), ${s.rows} execution rows over ${s.days} days in ${s.workspaces} workspaces; the rollup is execution_metrics_hourly; total ${Math.round((Date.now() - started) / 1000)} s.`,
    '',
    "Ratios: median of the paired ratios of interleaved pairs (order swapped every other pair), with IQR and min–max. Measured sides are wall times of the whole call (what its caller waits for). The bare GROUP BY has the rollup's measures and runs through the coordinator; where a case says so it is stored with one CREATE TEMP TABLE … AS (only that statement timed), elsewhere it returns its groups to the client.",
    '',
    `Load average (1, 5, 15 min) at the end of each case, on 2 cores shared with other work: ${loads.join('; ')}.`,
    '',
    ...notes.flatMap((n) => [n, '']),
    '| case | measured (median) | reference (median) | ratio | goal |',
    '|---|---|---|---|---|',
    ...lines,
    '',
    `Repeat: \`${only === undefined ? '' : `DISTRIBUTED_PARTS=${only} `}${process.env.DISTRIBUTED_NEW_HOUR_PAIRS === undefined ? '' : `DISTRIBUTED_NEW_HOUR_PAIRS=${process.env.DISTRIBUTED_NEW_HOUR_PAIRS} `}${process.env.DISTRIBUTED_NEW_HOUR_HISTORY === undefined ? '' : `DISTRIBUTED_NEW_HOUR_HISTORY=${process.env.DISTRIBUTED_NEW_HOUR_HISTORY} `}npm run bench -- --cases distributed --size ${size}\``,
    '',
  ].join('\n');
  const file = `results/${size}-distributed${only === undefined ? '' : `-${[...parts].join('+')}`}`;
  writeFileSync(new URL(`${file}.md`, import.meta.url), report);
  writeFileSync(new URL(`${file}.json`, import.meta.url), JSON.stringify({ size, pairs, results }, null, 2));
  process.stdout.write(report);
}
