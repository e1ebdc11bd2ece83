import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PoolClient } from '../../src/db/index.ts';
import { viewRollups } from '../../src/rollups/citus-view-rollups.ts';
import { hourlyStatsSql } from '../../src/rollups/citus-hourly-stats.ts';
import { materializedViewNames, prepareDatabase, refreshMaterializedViews } from '../../src/rollups/index.ts';
import { materializedViewSql } from '../../src/rollups/materialized-views.ts';
import { apply, opArb, ZONE } from './citus-ops.ts';
import { createCitusTestDatabase, type CitusTestDatabase } from './citus-database.ts';
import { cliEntry } from '../support/cli-command.ts';

// The seed's three materialized views on Citus (src/rollups/citus-views.ts): under their names and
// columns, each equal to its single-server definition run over the source rows, after random
// inserts, updates (across buckets and workspaces) and deletes; and neither reading nor refreshing
// them brings source rows to the coordinator (Citus's EXPLAIN ANALYZE: what the workers sent).

let db: CitusTestDatabase;
beforeAll(async () => {
  db = await createCitusTestDatabase();
  await prepareDatabase(db.pool, { analyticsTimezone: ZONE });
  await db.pool.query(
    `INSERT INTO public.workspaces (id, name) SELECT g, 'workspace ' || g FROM generate_series(1, 6) g`,
  );
});

const refresh = (force?: boolean): ReturnType<typeof refreshMaterializedViews> =>
  refreshMaterializedViews(db.pool, { timezone: ZONE, force });

/** Rows of `sql` as sorted JSON lines: a multiset to compare. */
async function rowsOf(client: PoolClient, sql: string): Promise<string[]> {
  const { rows } = await client.query(sql);
  return rows.map((r) => JSON.stringify(r)).sort();
}

/** Each view against its single-server definition run now over the source rows, in one session. */
async function differences(
  views: readonly string[] = materializedViewNames,
): Promise<Array<{ view: string; missing: string[]; extra: string[]; rows: number }>> {
  const client = await db.pool.connect();
  try {
    const out: Array<{ view: string; missing: string[]; extra: string[]; rows: number }> = [];
    for (const view of views) {
      const got = await rowsOf(client, `SELECT * FROM analytics.${view}`);
      const want = await rowsOf(client, materializedViewSql(view, ZONE));
      const left = new Map<string, number>();
      for (const r of want) left.set(r, (left.get(r) ?? 0) + 1);
      const extra: string[] = [];
      for (const r of got) {
        const n = left.get(r) ?? 0;
        if (n === 0) extra.push(r);
        else left.set(r, n - 1);
      }
      const missing = [...left].flatMap(([r, n]) => Array<string>(n).fill(r));
      if (missing.length > 0 || extra.length > 0 || want.length === 0)
        out.push({ view, missing: missing.slice(0, 3), extra: extra.slice(0, 3), rows: want.length });
    }
    return out;
  } finally {
    client.release();
  }
}

/** Rows the coordinator received from the workers in an EXPLAIN ANALYZE of `sql`, and the plan's text. */
async function received(sql: string, params: unknown[] = []): Promise<{ rows: number; plan: string }> {
  const { rows } = await db.pool.query<{ 'QUERY PLAN': unknown }>(
    `EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) ${sql}`,
    params,
  );
  const plan = rows[0]?.['QUERY PLAN'];
  let total = 0;
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node !== null && typeof node === 'object') {
      const n = node as Record<string, unknown>;
      if (n['Node Type'] === 'Custom Scan' && n['Custom Plan Provider'] === 'Citus Adaptive')
        total += Number(n['Actual Rows'] ?? 0) * Number(n['Actual Loops'] ?? 1);
      Object.values(n).forEach(walk);
    }
  };
  walk(plan);
  return { rows: total, plan: JSON.stringify(plan) };
}

describe('the materialized views on Citus', () => {
  it('are two views over distributed rollups and one coordinator table, under the names and columns of one server', async () => {
    const { rows } = await db.pool.query<{ name: string; kind: string; distributed: boolean }>(
      `SELECT c.relname AS name, c.relkind::text AS kind,
              EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = c.oid) AS distributed
       FROM pg_class c WHERE c.relnamespace = 'analytics'::regnamespace AND c.relname LIKE 'mv\\_%'
         AND c.relkind IN ('r', 'v', 'm') ORDER BY 1`,
    );
    expect(rows).toEqual([
      { name: 'mv_daily_user_metrics', kind: 'v', distributed: false },
      { name: 'mv_hourly_execution_stats', kind: 'r', distributed: false },
      { name: 'mv_workspace_summary', kind: 'v', distributed: false },
    ]);
    const { rows: rollups } = await db.pool.query<{ name: string }>(
      `SELECT logicalrelid::regclass::text AS name FROM pg_dist_partition
       WHERE logicalrelid::regclass::text LIKE 'analytics.view\\_%' ORDER BY 1`,
    );
    expect(rollups.map((r) => r.name)).toEqual(viewRollups.map((r) => `analytics.${r.name}`).sort());
    // Same columns, same types, same order as the definitions of one server.
    for (const view of materializedViewNames) {
      const { fields: got } = await db.pool.query(`SELECT * FROM analytics.${view} LIMIT 0`);
      const { fields: want } = await db.pool.query(
        `SELECT * FROM (${materializedViewSql(view, ZONE)}) d LIMIT 0`,
      );
      expect(
        got.map((f) => [f.name, f.dataTypeID]),
        view,
      ).toEqual(want.map((f) => [f.name, f.dataTypeID]));
    }
  });

  it('equal their definitions over the source rows after random inserts, updates and deletes', async () => {
    // Rows near now too, and around the start of mv_workspace_summary's 30 days.
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       SELECT 1 + g % 6, g % 5, 1, (ARRAY['success','failed','timeout','running'])[1 + g % 4],
              date_trunc('day', now(), $1) - interval '30 days' + (g - 20) * interval '17 minutes',
              CASE WHEN g % 4 = 3 THEN NULL ELSE 37 * g % 1000 END, g * 0.25
       FROM generate_series(1, 60) g`,
      [ZONE],
    );
    await db.pool.query(
      `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id)
       SELECT 1 + g % 6, g % 5, 'login', now() - g * interval '23 minutes', 's' FROM generate_series(1, 40) g`,
    );
    expect((await refresh()).map((r) => r.status)).toEqual(['refreshed', 'refreshed', 'refreshed']);
    expect(await differences()).toEqual([]);

    const batches = fc.sample(fc.array(opArb, { minLength: 30, maxLength: 30 }), { numRuns: 5, seed: 1313 });
    for (const ops of batches) {
      for (const op of ops) await apply(db.pool, op);
      await refresh();
      expect(await differences()).toEqual([]);
    }

    // Nothing changed: every view skipped, its rows as they were.
    expect((await refresh()).map((r) => r.status)).toEqual(['skipped', 'skipped', 'skipped']);
    expect(await differences()).toEqual([]);

    // A whole hour deleted: its row of mv_hourly_execution_stats goes; a rename shows at once.
    const { rows: hours } = await db.pool.query<{ hour: Date }>(
      'SELECT hour FROM analytics.mv_hourly_execution_stats ORDER BY executions_total DESC, hour LIMIT 1',
    );
    const hour = hours[0]?.hour;
    for (const ws of [1, 2, 3, 4, 5, 6])
      await db.pool.query(
        `DELETE FROM public.execution_logs
         WHERE workspace_id = $1 AND started_at >= $2 AND started_at < $2::timestamptz + interval '1 hour'`,
        [ws, hour],
      );
    await db.pool.query(`UPDATE public.workspaces SET name = 'renamed' WHERE id = 2`);
    const views = await refresh();
    expect(views.find((v) => v.view === 'mv_hourly_execution_stats')?.reason).toMatch(/1 removed/);
    expect(await differences()).toEqual([]);
  });

  it('are read and refreshed from rollup rows: the coordinator receives no source row', async () => {
    // 24,000 executions in 4 hours of 6 workspaces: 24 groups of the hourly rollup.
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       SELECT 1 + g % 6, g % 7, 1, (ARRAY['success','failed','timeout','cancelled'])[1 + g % 4],
              timestamptz '2026-11-20 10:00:00+00' + (g % 240) * interval '1 minute',
              (g * 7919) % 60000, 1.5
       FROM generate_series(1, 24000) g`,
    );
    const views = await refresh();
    expect(views.find((v) => v.view === 'mv_hourly_execution_stats')?.reason).toMatch(
      /4 hour\(s\) recomputed/,
    );
    expect(await differences()).toEqual([]);
    const { rows: counted } = await db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM public.execution_logs',
    );
    const sourceRows = counted[0]?.n ?? 0;
    expect(sourceRows).toBeGreaterThan(24_000);

    // Reading the views: the workers group and join the rollups' shards, co-located; the coordinator
    // receives the view's rows, nothing more (each worker evaluates the 30-day start itself; the
    // coordinator sends public.workspaces).
    for (const view of ['mv_daily_user_metrics', 'mv_workspace_summary']) {
      const { rows: viewRows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM analytics.${view}`,
      );
      const read = await received(`SELECT * FROM analytics.${view}`);
      expect(read.plan, view).not.toMatch(/execution_logs|user_activity_events/);
      expect(read.plan, view).toMatch(/view_user_executions_hourly/);
      expect(read.rows, view).toBe(viewRows[0]?.n);
    }

    // Refreshing the hourly table: each statement reads the rollup's shards; the workers send one row
    // per hour and shard (or per search target and shard), never a duration.
    const { rows: groups } = await db.pool.query<{ n: number; hours: Date[] }>(
      `SELECT count(*)::int AS n, array_agg(DISTINCT bucket_start) AS hours
       FROM analytics.view_execution_stats_hourly WHERE bucket_start >= '2026-11-20 10:00+00' AND bucket_start < '2026-11-20 14:00+00'`,
    );
    expect(groups[0]?.n).toBe(24);
    const hours = groups[0]?.hours ?? [];
    const { rows: all } = await db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM analytics.view_execution_stats_hourly',
    );
    const { rows: shardRows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_dist_shard
       WHERE logicalrelid = 'analytics.view_execution_stats_hourly'::regclass`,
    );
    const shards = shardRows[0]?.n ?? 0;
    expect(shards).toBeGreaterThan(1);
    const fingerprints = await received(hourlyStatsSql.fingerprints);
    const totals = await received(hourlyStatsSql.totals, [hours]);
    const search = await received(hourlyStatsSql.countAtOrBelow, [
      [0, 1, 2, 3],
      hours,
      [100, 20_000, 40_000, 59_000],
    ]);
    for (const r of [fingerprints, totals, search]) {
      expect(r.plan).not.toMatch(/execution_logs/);
      expect(r.plan).toMatch(/view_execution_stats_hourly/);
    }
    // At most a row per hour and shard (a row per group, across fewer shards than groups, at most).
    expect(fingerprints.rows).toBeLessThanOrEqual(all[0]?.n ?? 0);
    expect(totals.rows).toBeLessThanOrEqual(4 * shards);
    expect(search.rows).toBeLessThanOrEqual(4 * shards);
    expect(totals.rows + search.rows + fingerprints.rows).toBeLessThan(sourceRows / 100);
  });

  it('keep, after cleanup_old_data, the hours the sources lost (frozen, as every rollup), and expire with the hourly rollups', async () => {
    // One hour of executions 100 days ago and one 200 days ago (retention: 90 days, hourly rollups 180).
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       SELECT 1 + g % 6, g % 3, 1, 'success', date_trunc('hour', now() - d * interval '1 day') + g * interval '1 minute',
              10 * g, 1
       FROM generate_series(1, 30) g, (VALUES (100), (200)) v(d)`,
    );
    await refresh();
    expect(await differences(['mv_daily_user_metrics', 'mv_hourly_execution_stats'])).toEqual([]);
    const hourOf = async (sql: string): Promise<number> => {
      const { rows } = await db.pool.query<{ n: number }>(sql);
      return rows[0]?.n ?? -1;
    };
    const hourly = (days: number): string =>
      `SELECT count(*)::int AS n FROM analytics.mv_hourly_execution_stats
       WHERE hour = date_trunc('hour', now() - ${days} * interval '1 day')`;
    expect(await hourOf(hourly(100))).toBe(1);
    expect(await hourOf(hourly(200))).toBe(1);

    const cleanup = await promisify(execFile)(
      process.execPath,
      [cliEntry, 'run', 'cleanup_old_data', '--eager'],
      { env: { ...process.env, LOG_LEVEL: 'warn', DATABASE_URL: db.url, ANALYTICS_TIMEZONE: ZONE } },
    );
    expect(cleanup.stderr).not.toMatch(/error/i);
    await refresh();
    // The sources lost both hours; the view rollups keep the one 100 days ago (a frozen bucket, as
    // every rollup keeps it: on one server the view would lose it) and expired the one 200 days ago.
    expect(
      await hourOf(
        `SELECT count(*)::int AS n FROM public.execution_logs WHERE started_at < now() - interval '90 days'`,
      ),
    ).toBe(0);
    expect(await hourOf(hourly(100))).toBe(1);
    expect(await hourOf(hourly(200))).toBe(0);
    for (const def of viewRollups)
      expect(
        await hourOf(
          `SELECT count(*)::int AS n FROM analytics.${def.name} WHERE bucket_start < now() - interval '180 days'`,
        ),
        def.name,
      ).toBe(0);
    expect(
      await hourOf(
        `SELECT count(*)::int AS n FROM analytics.mv_daily_user_metrics WHERE day < now() - interval '180 days'`,
      ),
    ).toBe(0);
  });
});
