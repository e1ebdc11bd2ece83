/**
 * `npm run bench -- --cases distributed [--size small|full] [--runs N]`: the rollup engine on a Citus
 * cluster of its own (a coordinator and two workers, all on this machine: test/support/citus-cluster.ts),
 * issue 13. Ratios are medians of interleaved pairs with their spread (bench/stats.ts); the absolute
 * times are not a cluster's (three servers share this machine's cores), the ratios show the shape.
 * Writes bench/results/<size>-distributed.{md,json}.
 */
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
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
import { formatMs, formatRatios, interleavedPairs, summarize, type PairedRatios } from './stats.ts';

const ZONE = 'UTC';
const END = Date.parse('2026-11-01T00:00:00Z');
const DAY = 86_400_000;
const sizes = {
  small: { rows: 300_000, workspaces: 50, days: 30, pairs: 5 },
  full: { rows: 3_000_000, workspaces: 200, days: 30, pairs: 7 },
} as const;

const log = (line: string): void =>
  void process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

const hourly = builtinRollups.find((d) => d.name === 'execution_metrics_hourly') as RollupDefinition;

// The plain GROUP BY of the hourly execution metrics, as a user would write it ($1 zone, $2/$3 range):
// its result rows come back to the client, as the groups of a window refresh come to the coordinator.
const BARE_GROUP_BY = `
SELECT date_trunc('hour', started_at, $1) AS bucket_start, workspace_id,
  count(*), count(*) FILTER (WHERE status = 'success'), count(*) FILTER (WHERE status = 'failed'),
  count(*) FILTER (WHERE status = 'timeout'), count(*) FILTER (WHERE status = 'cancelled'),
  count(*) FILTER (WHERE status = 'running'), sum(duration_ms)::bigint, max(duration_ms),
  percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms),
  sum(credits_used), count(DISTINCT user_id), count(DISTINCT workflow_id)
FROM public.execution_logs WHERE started_at >= $2 AND started_at < $3 GROUP BY 1, 2`;

async function generate(pool: Pool, rows: number, workspaces: number, days: number, seed = 0): Promise<void> {
  const start = END - days * DAY;
  const chunk = 100_000;
  for (let done = 0; done < rows; done += chunk) {
    const n = Math.min(chunk, rows - done);
    await pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       SELECT 1 + (g * 7919) % $2, (g * 104729) % 500, (g * 31) % 40,
              (ARRAY['success','success','success','failed','timeout','cancelled'])[1 + (g % 6)],
              to_timestamp($3 + (g * 2654435761 % ($4::bigint * 1000)) / 1000.0), (g * 37) % 60000, (g % 100) / 4.0
       FROM generate_series($1::bigint + 1, $1::bigint + $5) g`,
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
  // The moved-away placements are dropped by Citus's deferred cleanup; do it now.
  await pool.query('CALL citus_cleanup_orphaned_resources()');
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
  const url = await createCitusDatabase(ports, 'aggjobs_bench_distributed');
  const pool = createPool({ connectionString: url, max: 4, applicationName: 'aggjobs bench distributed' });
  const lines: string[] = [];
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
    const range = [ZONE, new Date(END - s.days * DAY), new Date(END)];

    log('backfill (window refresh through the coordinator) ÷ bare GROUP BY');
    const backfill = await interleavedPairs({
      minPairs: pairs,
      maxPairs: pairs,
      before: () => pool.query(`TRUNCATE analytics.${hourly.name}`),
      measure: async () => (await windowAll(pool, s.days)).durationMs,
      reference: () => pool.query(BARE_GROUP_BY, range),
    });
    ratioLine(
      'backfill of all hourly execution metrics (window refresh, into an empty rollup) ÷ bare GROUP BY',
      '≤ 1.5',
      backfill.ratios,
      backfill.measured,
      backfill.reference,
    );

    log('backfill per node (the first incremental run: every shard recomputed on its node) ÷ bare GROUP BY');
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
      measure: async () => (await incremental(pool)).durationMs,
      reference: () => pool.query(BARE_GROUP_BY, range),
    });
    ratioLine(
      'backfill per node (first incremental run, into an empty rollup) ÷ bare GROUP BY',
      '≤ 1.5',
      perNode.ratios,
      perNode.measured,
      perNode.reference,
    );

    log('incremental after one new hour ÷ bare GROUP BY of that hour');
    let hour = 0;
    const perHour = Math.round(s.rows / (s.days * 24));
    const newHour = await interleavedPairs({
      minPairs: pairs,
      maxPairs: pairs,
      before: async () => {
        hour += 1;
        const at = END + (hour - 1) * 3_600_000;
        await pool.query(
          `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
           SELECT 1 + (g * 7919) % $1, (g * 104729) % 500, (g * 31) % 40, 'success',
                  to_timestamp($2 + (g % 3600)), (g * 37) % 60000, (g % 100) / 4.0
           FROM generate_series(1, $3) g`,
          [s.workspaces, at / 1000, perHour],
        );
      },
      measure: async () => (await incremental(pool)).durationMs,
      reference: () =>
        pool.query(BARE_GROUP_BY, [
          ZONE,
          new Date(END + (hour - 1) * 3_600_000),
          new Date(END + hour * 3_600_000),
        ]),
    });
    ratioLine(
      `incremental run after one new hour (${perHour} rows) ÷ bare GROUP BY of that hour`,
      '≤ 2.5',
      newHour.ratios,
      newHour.measured,
      newHour.reference,
    );

    log('incremental after 1,000 updates over 30 days ÷ full recompute');
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
    const scattered = await interleavedPairs({
      minPairs: pairs,
      maxPairs: pairs,
      before: updates,
      measure: async () => (await incremental(pool)).durationMs,
      reference: async () => (await windowAll(pool, s.days + 1)).durationMs,
    });
    ratioLine(
      'incremental run after 1,000 updates spread over 30 days ÷ full recompute (window refresh of all days)',
      '≤ 0.05',
      scattered.ratios,
      scattered.measured,
      scattered.reference,
    );

    // 1 worker against 2: the same work, with every shard on one worker, then back on two.
    log('per-node refresh with 2 workers, then with every shard on one worker');
    const workload = async (): Promise<{ updates: number; full: number; nodes: number; groups: number }> => {
      const u: number[] = [];
      const f: number[] = [];
      const g: number[] = [];
      let nodes = 0;
      // One run to fold in what the move left (a moved shard is recomputed whole once).
      await incremental(pool);
      for (let i = 0; i < pairs; i += 1) {
        await updates();
        const r = await incremental(pool);
        u.push(r.durationMs);
        g.push(r.groupsRecomputed);
        nodes = r.nodes?.length ?? 0;
        await pool.query(
          'UPDATE aggjobs.rollup_state SET snapshot = NULL, horizon = NULL WHERE rollup = $1',
          [hourly.name],
        );
        f.push((await incremental(pool)).durationMs);
      }
      return { updates: summarize(u).median, full: summarize(f).median, nodes, groups: summarize(g).median };
    };
    const two = await workload();
    const [w1, w2] = ports.workerPorts as [number, number];
    await moveAll(pool, w2, w1);
    const one = await workload();
    await moveAll(pool, w1, w2);
    results.workers = { two, one };
    lines.push(
      '',
      '| per-node refresh (median of ' + String(pairs) + ') | 2 workers | 1 worker | 1 ÷ 2 |',
      '|---|---|---|---|',
      `| incremental after 1,000 updates | ${formatMs(two.updates)} (${two.groups} groups) | ${formatMs(one.updates)} (${one.groups} groups) | ${(one.updates / two.updates).toFixed(2)} |`,
      `| every shard recomputed on its node (first run) | ${formatMs(two.full)} | ${formatMs(one.full)} | ${(one.full / two.full).toFixed(2)} |`,
    );
  } finally {
    await pool.end();
    await cluster.stop();
  }
  const report = [
    `# Distributed benchmark (${size})`,
    '',
    `Run ${new Date().toISOString()} on ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB: a Citus 13.2.2 cluster of a coordinator and two workers, all on this machine (citus.shard_count 4, so 2 shards per worker), ${s.rows} execution rows over ${s.days} days in ${s.workspaces} workspaces; the rollup is execution_metrics_hourly; total ${Math.round((Date.now() - started) / 1000)} s.`,
    '',
    'Ratios: median of the paired ratios of interleaved pairs (order swapped every other pair), with IQR and min–max. The bare GROUP BY runs through the coordinator and returns its groups to the client.',
    '',
    '| case | measured (median) | reference (median) | ratio | goal |',
    '|---|---|---|---|---|',
    ...lines,
    '',
    `Repeat: \`npm run bench -- --cases distributed --size ${size}\``,
    '',
  ].join('\n');
  writeFileSync(new URL(`results/${size}-distributed.md`, import.meta.url), report);
  writeFileSync(
    new URL(`results/${size}-distributed.json`, import.meta.url),
    JSON.stringify({ size, pairs, results }, null, 2),
  );
  process.stdout.write(report);
}
