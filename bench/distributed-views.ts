/**
 * The seed's three materialized views on the bench's Citus cluster (bench/distributed.ts, issue 13):
 * on Citus they are served from per-node view rollups (src/rollups/citus-views.ts). Measures their
 * refresh after one new hour, and a read of each, against what a Citus user has without them: the
 * views' single-server defining queries run over the distributed sources on the same cluster.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { Pool } from '../src/db/index.ts';
import { materializedViewNames, refreshMaterializedViews } from '../src/rollups/index.ts';
import { materializedViewSql } from '../src/rollups/materialized-views.ts';
import { intoTempTables } from './engine-cases.ts';
import { formatMs, formatRatios, pairedRatios, summarize, type PairedRatios } from './stats.ts';

const HOUR = 3_600_000;

/** Activity events over the same days and workspaces as the executions, users bound to a workspace. */
export async function generateEvents(
  pool: Pool,
  options: { rows: number; workspaces: number; days: number; end: number },
): Promise<void> {
  const chunk = 100_000;
  for (let done = 0; done < options.rows; done += chunk) {
    await pool.query(
      `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id)
       SELECT ws, ws * 20 + g % 20,
              (ARRAY['page_view','api_call','workflow_run','workflow_edit','login','settings_change'])[1 + g % 6],
              to_timestamp($3 + (g * 2654435761 % ($4::bigint * 1000)) / 1000.0), 's' || (ws * 100 + g % 50)
       FROM (SELECT g, 1 + (g * 7919) % $2 AS ws FROM generate_series($1::bigint + 1, $1::bigint + $5) g) x`,
      [
        done,
        options.workspaces,
        (options.end - options.days * 86_400_000) / 1000,
        options.days * 86_400,
        Math.min(chunk, options.rows - done),
      ],
    );
  }
  await pool.query(
    `INSERT INTO public.workspaces (id, name) SELECT g, 'workspace ' || g FROM generate_series(1, $1) g
     ON CONFLICT DO NOTHING`,
    [options.workspaces],
  );
  await pool.query('ANALYZE public.user_activity_events');
}

/** One new hour of events (a fifth of the hour's executions), after `at`. */
export async function insertEventHour(
  pool: Pool,
  at: number,
  rows: number,
  workspaces: number,
): Promise<void> {
  await pool.query(
    `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id)
     SELECT ws, ws * 20 + g % 20, 'api_call', to_timestamp($2 + (g % 3600)), 's' || ws
     FROM (SELECT g, 1 + (g * 7919) % $1 AS ws FROM generate_series(1, $3) g) x`,
    [workspaces, at / 1000, rows],
  );
}

/** The user's materialized views on Citus without aggjobs: each defining query into a new table. */
async function definingQueries(pool: Pool, zone: string): Promise<void> {
  await intoTempTables(
    pool,
    materializedViewNames.map((name) => ({ sql: materializedViewSql(name, zone) })),
  );
}

const timed = async (fn: () => Promise<unknown>): Promise<number> => {
  const started = performance.now();
  await fn();
  return performance.now() - started;
};

/** CPU seconds (user + system) of a process, from /proc (Linux; the nodes run on this machine). */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/**
 * CPU of the engine's sessions on each worker (application_name `aggjobs refresh`), read from
 * /proc: cumulative per backend, so a difference of two readings is what a refresh cost each node
 * (its node pool keeps the sessions between runs).
 */
export async function refreshCpu(workerUrls: readonly string[]): Promise<Array<Map<number, number>>> {
  const out: Array<Map<number, number>> = [];
  for (const url of workerUrls) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE application_name = 'aggjobs refresh'`,
      );
      out.push(new Map(rows.map((r) => [r.pid, cpuSeconds(r.pid)])));
    } finally {
      await client.end();
    }
  }
  return out;
}

/** CPU seconds per worker between two readings of refreshCpu (a session started since counts whole). */
export function cpuBetween(before: Array<Map<number, number>>, after: Array<Map<number, number>>): number[] {
  return after.map((now, i) => [...now].reduce((s, [pid, cpu]) => s + cpu - (before[i]?.get(pid) ?? 0), 0));
}

export interface ViewsCase {
  lines: string[];
  results: Record<string, unknown>;
}

/**
 * The views after one new hour: refresh_materialized_views on Citus (the three view rollups per
 * node, then the hourly table) ÷ the three defining queries over the sources into new tables (what
 * refreshing them as materialized views costs on Citus); then a read of each view ÷ its defining
 * query over the sources (both return the same rows to the client). Interleaved pairs.
 */
export async function viewsCase(
  pool: Pool,
  options: {
    zone: string;
    pairs: number;
    workspaces: number;
    firstHour: number;
    insertHour: (at: number) => Promise<void>;
  },
): Promise<ViewsCase> {
  const refresh = (): Promise<unknown> => refreshMaterializedViews(pool, { timezone: options.zone });
  await refresh();
  const measured: number[] = [];
  const reference: number[] = [];
  for (let i = 0; i < options.pairs; i += 1) {
    await options.insertHour(options.firstHour + i * HOUR);
    if (i % 2 === 0) {
      reference.push(await timed(() => definingQueries(pool, options.zone)));
      measured.push(await timed(refresh));
    } else {
      measured.push(await timed(refresh));
      reference.push(await timed(() => definingQueries(pool, options.zone)));
    }
  }
  const refreshRatios = pairedRatios(measured, reference);
  const lines = [
    `| views' refresh after one new hour (refresh_materialized_views: 3 view rollups per node, then the hourly table) ÷ the 3 defining queries over the sources, CREATE TEMP TABLE … AS | ${formatMs(summarize(measured).median)} | ${formatMs(summarize(reference).median)} | ${formatRatios(refreshRatios)} | none set |`,
  ];
  const results: Record<string, unknown> = {
    viewsRefresh: { ratios: refreshRatios, measured, reference },
  };
  for (const name of materializedViewNames) {
    const read: number[] = [];
    const onSources: number[] = [];
    let rows = 0;
    for (let i = 0; i < options.pairs; i += 1) {
      const view = async (): Promise<void> => {
        rows = (await pool.query(`SELECT * FROM analytics.${name}`)).rowCount ?? 0;
      };
      const sources = (): Promise<unknown> => pool.query(materializedViewSql(name, options.zone));
      if (i % 2 === 0) {
        onSources.push(await timed(sources));
        read.push(await timed(view));
      } else {
        read.push(await timed(view));
        onSources.push(await timed(sources));
      }
    }
    const r: PairedRatios = pairedRatios(read, onSources);
    results[`read ${name}`] = { ratios: r, measured: read, reference: onSources, rows };
    lines.push(
      `| read of ${name} (${rows} rows) ÷ its defining query over the sources | ${formatMs(summarize(read).median)} | ${formatMs(summarize(onSources).median)} | ${formatRatios(r)} | none set |`,
    );
  }
  return { lines, results };
}
