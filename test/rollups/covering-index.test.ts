import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  builtinRollups,
  installRollups,
  refreshRollup,
  type RollupDefinition,
} from '../../src/rollups/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { compareWithOracle } from '../support/oracle.ts';
import { resetData } from '../support/rollup-helpers.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  // Back to the built-ins, which ask for no covering index: installing them drops ours.
  await installRollups(db.pool, builtinRollups);
});

const hourly = builtinRollups.find((d) => d.name === 'execution_metrics_hourly') as RollupDefinition;

async function indexesOf(table: string): Promise<Array<{ name: string; def: string }>> {
  const { rows } = await db.pool.query<{ name: string; def: string }>(
    `SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def
     FROM pg_index WHERE indrelid = $1::regclass AND indexrelid::regclass::text LIKE '%aggjobs\\_cover\\_%'`,
    [table],
  );
  return rows;
}

describe('covering index (opt-in per rollup)', () => {
  it('is derived from the measures, replaced when they read another column, dropped when no rollup asks', async () => {
    expect(await indexesOf('public.execution_logs')).toEqual([]);
    await installRollups(db.pool, [
      ...builtinRollups.filter((d) => d.name !== hourly.name),
      { ...hourly, coveringIndex: true },
    ]);
    const first = await indexesOf('public.execution_logs');
    expect(first).toHaveLength(1);
    // Key: first dimension and time; included: every column the measures read, asked of PostgreSQL.
    expect(first[0]?.def).toMatch(
      /\(workspace_id, started_at\) INCLUDE \(credits_used, duration_ms, status, user_id, workflow_id\)$/,
    );

    const narrower: RollupDefinition = {
      ...hourly,
      coveringIndex: true,
      measures: [
        { name: 'executions_total', type: 'bigint', sql: 'count(*)' },
        { name: 'completed', type: 'bigint', sql: 'count(completed_at)' },
      ],
    };
    await installRollups(db.pool, [
      ...builtinRollups.filter((d) => d.name !== hourly.name),
      { ...narrower, name: 'covering_probe' },
    ]);
    const second = await indexesOf('public.execution_logs');
    expect(second).toHaveLength(1);
    expect(second[0]?.def).toMatch(/\(workspace_id, started_at\) INCLUDE \(completed_at\)$/);
    expect(second[0]?.name).not.toBe(first[0]?.name);
    await db.pool.query('DROP TABLE analytics.covering_probe');
    await db.pool.query(`DELETE FROM aggjobs.rollup_state WHERE rollup = 'covering_probe'`);

    await installRollups(db.pool, builtinRollups);
    expect(await indexesOf('public.execution_logs')).toEqual([]);
  });

  it('serves the recompute of an old group from the index alone, and the rollup stays exact', async () => {
    await resetData(db.pool);
    const covered = { ...hourly, coveringIndex: true };
    await installRollups(db.pool, [...builtinRollups.filter((d) => d.name !== hourly.name), covered]);
    await db.pool.query(`
      INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
      SELECT 1 + i % 7, i % 13, i % 5, CASE WHEN i % 3 = 0 THEN 'failed' ELSE 'success' END,
             timestamptz '2026-05-01' + make_interval(mins => i), i % 1000, i % 17
      FROM generate_series(1, 5000) i`);
    await refreshRollup(db.pool, covered, { timezone: 'UTC', mode: { kind: 'incremental' } });
    // An index-only scan is chosen when the table's pages are marked all-visible (pg_class.relallvisible).
    // Autovacuum is off for this table here: an ANALYZE of its own, started late by the 5,000 inserts,
    // could count the pages the UPDATE below un-marks and tip the plan (a CI run under load saw it).
    await db.pool.query('ALTER TABLE public.execution_logs SET (autovacuum_enabled = off)');
    await db.pool.query(`UPDATE public.execution_logs SET duration_ms = duration_ms + 1 WHERE id % 500 = 3`);
    await db.pool.query('VACUUM ANALYZE public.execution_logs');
    // The plan of one group's recompute as the incremental refresh runs it (rollup-sql.ts).
    const { rows: plan } = await db.pool.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), count(DISTINCT user_id)
       FROM public.execution_logs s
       WHERE s.workspace_id = 3 AND s.started_at >= timestamptz '2026-05-02 10:00Z' AND s.started_at < timestamptz '2026-05-02 11:00Z'`,
    );
    const { rows: pages } = await db.pool.query<{ relpages: number; relallvisible: number }>(
      `SELECT relpages, relallvisible FROM pg_class WHERE oid = 'public.execution_logs'::regclass`,
    );
    expect(
      plan.map((r) => r['QUERY PLAN']).join('\n'),
      `pages and all-visible: ${JSON.stringify(pages[0])}`,
    ).toMatch(/Index Only Scan using execution_logs_aggjobs_cover_/);
    await refreshRollup(db.pool, covered, { timezone: 'UTC', mode: { kind: 'incremental' } });
    expect(await compareWithOracle(db.pool, 'UTC', { tables: ['execution_metrics_hourly'] })).toEqual([]);
    await db.pool.query('ALTER TABLE public.execution_logs RESET (autovacuum_enabled)');
  });

  it('refuses two rollups of one source that would key it differently, naming both keys', async () => {
    const byWorkflow: RollupDefinition = {
      ...hourly,
      name: 'covering_by_workflow',
      coveringIndex: true,
      dimensions: [{ column: 'workflow_id', type: 'bigint' }],
    };
    const covered = { ...hourly, coveringIndex: true };
    await expect(
      installRollups(db.pool, [...builtinRollups.filter((d) => d.name !== hourly.name), covered, byWorkflow]),
    ).rejects.toThrow(
      /covering_by_workflow: coveringIndex needs the same first dimension and time column .*\(workspace_id, started_at\), got workflow_id, started_at/,
    );
    // Refused before anything was installed.
    const { rows } = await db.pool.query(`SELECT to_regclass('analytics.covering_by_workflow') AS t`);
    expect(rows[0]?.t).toBeNull();
  });
});
