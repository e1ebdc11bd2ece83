/**
 * `npm run bench -- --cases partitions [--size small|full] [--runs N]`: issue 17, retention of one
 * day on `execution_logs` partitioned by UTC day (partitions detached concurrently and dropped)
 * against the same rows in a plain table (batched deletes), each pair on the same day of identical
 * data: time, WAL written (server-wide: other work on the server adds to it), dead tuples left
 * (what a `VACUUM (VERBOSE)` right after reports removing, and its time; autovacuum off on the table,
 * so nothing is cleaned before it), and the p99 latency of an application
 * writer inserting one row at a time while the cleanup runs ÷ in a window of the same length without
 * it. Writes bench/results/<size>-partitions.{md,json}. Both databases are made anew every run and
 * dropped at its end.
 */
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import pg from 'pg';
import { parseSettings } from '../src/config/index.ts';
import { createPool, type Pool } from '../src/db/index.ts';
import { cleanupOldData } from '../src/rollups/index.ts';
import { formatMs, formatRatios, pairedRatios, percentile, summarize } from './stats.ts';

const DAY = 86_400_000;
const sizes = {
  // rows a day, days: full is the issue's 10M size (10M executions a month, a day is 333k rows)
  small: { perDay: 33_000, days: 12, pairs: 5 },
  full: { perDay: 333_000, days: 30, pairs: 5 },
} as const;

const log = (line: string): void =>
  void process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** The application's partitioned table, a partition per UTC day over [from, from + days). */
function partitionedSql(from: number, days: number): string {
  const statements = [
    `CREATE TABLE public.execution_logs (
       id bigserial, workspace_id bigint NOT NULL, user_id bigint NOT NULL, workflow_id bigint NOT NULL,
       status text NOT NULL CHECK (status IN ('running', 'success', 'failed', 'timeout', 'cancelled')),
       started_at timestamptz NOT NULL, completed_at timestamptz, duration_ms integer,
       credits_used numeric(14,4) NOT NULL DEFAULT 0, error_type text, PRIMARY KEY (id, started_at)
     ) PARTITION BY RANGE (started_at)`,
  ];
  for (let d = 0; d < days; d += 1) {
    const a = new Date(from + d * DAY).toISOString();
    const b = new Date(from + (d + 1) * DAY).toISOString();
    statements.push(
      `CREATE TABLE public.execution_logs_p${a.slice(0, 10).replaceAll('-', '')} PARTITION OF public.execution_logs FOR VALUES FROM ('${a}') TO ('${b}')`,
    );
  }
  return statements.join(';\n');
}

async function makeDatabase(
  adminUrl: string,
  name: string,
  partitioned: { from: number; days: number } | undefined,
): Promise<Pool> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const pool = createPool({
    connectionString: withDatabase(adminUrl, name),
    max: 6,
    applicationName: 'aggjobs bench',
  });
  if (partitioned !== undefined) await pool.query(partitionedSql(partitioned.from, partitioned.days));
  const { prepareDatabase } = await import('../src/rollups/index.ts');
  await prepareDatabase(pool, parseSettings({}));
  return pool;
}

/** Identical rows in both: `perDay` a day, evenly over [from, from + days). */
async function generate(pool: Pool, from: number, days: number, perDay: number): Promise<void> {
  const total = perDay * days;
  const chunk = 100_000;
  const step = (days * DAY) / total;
  for (let done = 0; done < total; done += chunk) {
    await pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       SELECT 1 + (g * 7919) % 200, (g * 104729) % 500, (g * 31) % 40,
              (ARRAY['success','success','success','failed','timeout','cancelled'])[1 + (g % 6)],
              to_timestamp(($1::float8 + g * $2::float8) / 1000), (g * 37) % 60000, (g % 100) / 4.0
       FROM generate_series($3::bigint, $4::bigint) g`,
      [from, step, done, Math.min(done + chunk, total) - 1],
    );
  }
}

/**
 * What the cleanup left for vacuum: `VACUUM (VERBOSE)` of the table (every partition of a
 * partitioned one) right after it, timed, and the dead tuples and dead item identifiers (line
 * pointers of rows already pruned, with their index entries) it reports removing. The statistics'
 * n_dead_tup would undercount: page pruning during the later delete batches lowers it although the
 * line pointers and index entries stay.
 */
async function vacuumAfter(pool: Pool): Promise<{ ms: number; dead: number }> {
  const client = await pool.connect();
  const notices: string[] = [];
  const onNotice = (n: { message?: string }): void => void notices.push(n.message ?? '');
  client.on('notice', onNotice);
  try {
    const started = performance.now();
    await client.query('VACUUM (VERBOSE) public.execution_logs');
    const ms = performance.now() - started;
    let dead = 0;
    for (const text of notices) {
      for (const m of text.matchAll(/tuples: (\d+) removed/g)) dead += Number(m[1]);
      for (const m of text.matchAll(/(\d+) dead item identifiers removed/g)) dead += Number(m[1]);
    }
    return { ms, dead };
  } finally {
    client.off('notice', onNotice);
    client.release();
  }
}

async function walLsn(pool: Pool): Promise<string> {
  return (
    (await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn ?? '0/0'
  );
}

async function walSince(pool: Pool, lsn: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS n', [
    lsn,
  ]);
  return Number(rows[0]?.n ?? 0);
}

/** One writer inserting one row at a time (at now()) for `ms`, with `during` started after 300 ms. */
async function writerWindow(
  pool: Pool,
  ms: number,
  during?: () => Promise<unknown>,
): Promise<{ latencies: number[]; duringMs: number }> {
  const latencies: number[] = [];
  const started = performance.now();
  let duringMs = 0;
  const other = (async () => {
    if (during === undefined) return;
    await new Promise((resolve) => setTimeout(resolve, 300));
    const t = performance.now();
    await during();
    duringMs = performance.now() - t;
  })();
  while (performance.now() - started < ms || (during !== undefined && duringMs === 0)) {
    const t = performance.now();
    await pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at)
       VALUES (1, 1, 1, 'running', now())`,
    );
    latencies.push(performance.now() - t);
  }
  await other;
  return { latencies, duringMs };
}

interface Removal {
  ms: number;
  walBytes: number;
  deadTuples: number;
  vacuumMs: number;
  rowsRemoved: number;
  writerP99: number;
  writerP99Without: number;
  writes: number;
}

export async function runPartitionsBench(options: { size: string; runs?: string }): Promise<void> {
  if (options.size !== 'small' && options.size !== 'full')
    throw new Error(`--size must be small or full, got "${options.size}"`);
  const size = sizes[options.size];
  const pairs = Math.min(options.runs === undefined ? size.pairs : Number(options.runs), size.days - 2);
  const adminUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
  const started = Date.now();
  const today = Math.floor(Date.now() / DAY) * DAY;
  // The days end tomorrow (the writer inserts at now()), so they start `days - 1` days ago.
  const from = today - (size.days - 1) * DAY;
  const plain = await makeDatabase(adminUrl, `aggjobs_bench_retention_plain_${options.size}`, undefined);
  const daily = await makeDatabase(adminUrl, `aggjobs_bench_retention_daily_${options.size}`, {
    from,
    days: size.days,
  });
  try {
    for (const [name, pool] of [
      ['plain', plain],
      ['partitioned', daily],
    ] as const) {
      log(`generating ${size.perDay * size.days} rows over ${size.days} days (${name})`);
      await generate(pool, from, size.days, size.perDay);
      await pool.query('VACUUM ANALYZE public.execution_logs');
      // Dead tuples are counted after each cleanup: autovacuum must not remove them meanwhile (on
      // the plain table, or on every partition; a partitioned parent has no storage of its own).
      const { rows: leaves } = await pool.query<{ name: string }>(
        `SELECT relid::regclass::text AS name FROM pg_partition_tree('public.execution_logs') WHERE isleaf`,
      );
      for (const leaf of leaves) await pool.query(`ALTER TABLE ${leaf.name} SET (autovacuum_enabled = off)`);
    }
    const results: { plain: Removal[]; partitioned: Removal[] } = { plain: [], partitioned: [] };
    const settings = parseSettings({});
    for (let i = 0; i < pairs; i += 1) {
      // Day i goes: as of (day i + 1) + 10 days, 10 days of retention cut exactly at its end.
      const asOf = new Date(from + (i + 1) * DAY + 10 * DAY);
      const order = i % 2 === 0 ? (['plain', 'partitioned'] as const) : (['partitioned', 'plain'] as const);
      for (const kind of order) {
        const pool = kind === 'plain' ? plain : daily;
        const { rows: count } = await pool.query<{ n: string }>(
          'SELECT count(*) AS n FROM public.execution_logs WHERE started_at < $1',
          [new Date(from + (i + 1) * DAY)],
        );
        const lsn = await walLsn(pool);
        let cleanupMs = 0;
        const withCleanup = await writerWindow(pool, 2000, async () => {
          const t = performance.now();
          await cleanupOldData(
            pool,
            [],
            {
              retentionDays: 10,
              sources: [{ table: 'public.execution_logs', timeColumn: 'started_at' }],
              rollupRetentionFactor: 2,
              batchSize: settings.cleanupBatchSize,
            },
            { asOf },
          );
          cleanupMs = performance.now() - t;
        });
        const walBytes = await walSince(pool, lsn);
        const { rows: left } = await pool.query<{ n: string }>(
          'SELECT count(*) AS n FROM public.execution_logs WHERE started_at < $1',
          [new Date(from + (i + 1) * DAY)],
        );
        if (Number(left[0]?.n) !== 0) throw new Error(`${kind}: day ${i} was not removed`);
        // The same writer, as long, without a cleanup.
        const without = await writerWindow(pool, Math.max(2000, cleanupMs + 300));
        const vacuum = await vacuumAfter(pool);
        const removal: Removal = {
          ms: cleanupMs,
          walBytes,
          deadTuples: vacuum.dead,
          vacuumMs: vacuum.ms,
          rowsRemoved: Number(count[0]?.n ?? 0),
          writerP99: percentile(withCleanup.latencies, 99),
          writerP99Without: percentile(without.latencies, 99),
          writes: withCleanup.latencies.length,
        };
        results[kind].push(removal);
        log(
          `day ${i} ${kind}: ${removal.rowsRemoved} rows in ${formatMs(removal.ms)}, WAL ${(removal.walBytes / 2 ** 20).toFixed(1)} MiB, ` +
            `${removal.deadTuples} dead tuples and item identifiers (vacuum ${formatMs(removal.vacuumMs)}), writer p99 ${removal.writerP99.toFixed(1)} ms vs ${removal.writerP99Without.toFixed(1)} ms without`,
        );
      }
    }
    const med = (k: 'plain' | 'partitioned', f: (r: Removal) => number): number =>
      summarize(results[k].map(f)).median;
    const p99Ratio = (k: 'plain' | 'partitioned') =>
      pairedRatios(
        results[k].map((r) => r.writerP99),
        results[k].map((r) => r.writerP99Without),
      );
    const timeRatio = pairedRatios(
      results.partitioned.map((r) => r.ms),
      results.plain.map((r) => r.ms),
    );
    const lines = [
      `# Retention of one day: partition drop vs batched delete (${options.size})`,
      '',
      `Run ${new Date().toISOString()} on ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, PostgreSQL at ${new URL(adminUrl).host}; ${size.perDay * size.days} execution rows over ${size.days} days (${size.perDay} a day) in each of two databases, identical; ${pairs} days removed from each, in pairs, the order swapped every other pair; CLEANUP_BATCH_SIZE ${settings.cleanupBatchSize}; total ${Math.round((Date.now() - started) / 1000)} s.`,
      '',
      '| one day (medians) | batched delete (plain table) | partition drop (daily partitions) |',
      '|---|---|---|',
      `| rows removed | ${med('plain', (r) => r.rowsRemoved)} | ${med('partitioned', (r) => r.rowsRemoved)} |`,
      `| time | ${formatMs(med('plain', (r) => r.ms))} | ${formatMs(med('partitioned', (r) => r.ms))} |`,
      `| WAL written (server-wide) | ${(med('plain', (r) => r.walBytes) / 2 ** 20).toFixed(1)} MiB | ${(med('partitioned', (r) => r.walBytes) / 2 ** 20).toFixed(2)} MiB |`,
      `| dead tuples and item identifiers left (what VACUUM then removes) | ${med('plain', (r) => r.deadTuples)} | ${med('partitioned', (r) => r.deadTuples)} |`,
      `| the VACUUM of the table after it | ${formatMs(med('plain', (r) => r.vacuumMs))} | ${formatMs(med('partitioned', (r) => r.vacuumMs))} |`,
      `| writer insert p99 during ÷ without | ${formatRatios(p99Ratio('plain'))} | ${formatRatios(p99Ratio('partitioned'))} |`,
      '',
      `Partition drop time ÷ batched delete time: ${formatRatios(timeRatio)}.`,
      '',
      'Writer p99 in ms (during, without), per day:',
      '',
      ...(['plain', 'partitioned'] as const).map(
        (k) =>
          `- ${k}: ${results[k].map((r) => `${r.writerP99.toFixed(1)}/${r.writerP99Without.toFixed(1)} (${r.writes} inserts)`).join(', ')}`,
      ),
      '',
      `Repeat: \`npm run bench -- --cases partitions --size ${options.size}\``,
      '',
    ];
    writeFileSync(`bench/results/${options.size}-partitions.md`, lines.join('\n'));
    writeFileSync(
      `bench/results/${options.size}-partitions.json`,
      `${JSON.stringify({ size, pairs, results }, null, 2)}\n`,
    );
    process.stdout.write(lines.join('\n'));
  } finally {
    await plain.end();
    await daily.end();
    // Made anew by every run: nothing to keep.
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    for (const name of [
      `aggjobs_bench_retention_plain_${options.size}`,
      `aggjobs_bench_retention_daily_${options.size}`,
    ])
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
  }
}
