import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createPool } from '../../src/db/index.ts';
import {
  builtinRollups,
  installRollups,
  rebuildRollup,
  refreshRollup,
  RollupRebuildRequiredError,
  type RollupDefinition,
} from '../../src/rollups/index.ts';
import { rollupStatuses } from '../../src/web/queries/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { healthReport } from '../support/health.ts';
import { findPgTools } from '../support/postgres-server.ts';
import { assertRollupsMatchOracle, compareWithOracle } from '../support/oracle.ts';
import { refreshAll, resetData } from '../support/rollup-helpers.ts';
import { cliEntry } from '../support/cli-command.ts';

/**
 * What built a rollup's rows (migration 000009): a refresh under another ANALYTICS_TIMEZONE,
 * definition or cluster is refused before it writes, naming the fix; `aggjobs rollups rebuild`
 * makes the tables equal the oracle again.
 */
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
beforeEach(async () => {
  await resetData(db.pool);
  await db.pool.query(
    'UPDATE aggjobs.rollup_state SET built_timezone = NULL, built_fingerprint = NULL, built_definition = NULL, built_system_identifier = NULL',
  );
});

const NEW_YORK = 'America/New_York';
const KATHMANDU = 'Asia/Kathmandu';

/** Rows of every source over three days around a New York midnight, on quarter hours. */
async function seed(offsetMinutes = 0): Promise<void> {
  await db.pool.query(
    `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
     SELECT 1 + i % 3, i % 5, i % 4, (ARRAY['success','failed','timeout','running'])[1 + i % 4],
            timestamptz '2026-05-01 02:00Z' + make_interval(mins => $1 + i * 37), i * 13 % 1000, (i % 7) * 0.25
     FROM generate_series(1, 120) i;
     INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, session_id, occurred_at)
     SELECT 1 + i % 2, i % 6, (ARRAY['login','view','click'])[1 + i % 3], 's' || (i % 9),
            timestamptz '2026-05-01 03:10Z' + make_interval(mins => $1 + i * 41)
     FROM generate_series(1, 80) i;
     INSERT INTO public.credit_transactions (workspace_id, user_id, credits, source, created_at)
     SELECT 1 + i % 2, i % 4, i * 0.5, (ARRAY['execution','adjustment'])[1 + i % 2],
            timestamptz '2026-05-01 04:20Z' + make_interval(mins => $1 + i * 53)
     FROM generate_series(1, 60) i`.replaceAll('$1', String(offsetMinutes)),
  );
}

async function tableContents(): Promise<string> {
  const parts: string[] = [];
  for (const def of builtinRollups) {
    const { rows } = await db.pool.query(`SELECT * FROM analytics.${def.name} ORDER BY 1, 2, 3`);
    parts.push(JSON.stringify(rows));
  }
  return parts.join('\n');
}

function aggjobs(
  args: string[],
  env: Record<string, string>,
): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [cliEntry, ...args], {
    env: {
      ...process.env,
      DATABASE_URL: db.url,
      REDIS_URL: '',
      CELERY_BROKER_URL: '',
      LOG_LEVEL: 'warn',
      ...env,
    },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('ANALYTICS_TIMEZONE changed between refreshes', () => {
  it('refuses every refresh before writing, names the setting and the fix; rebuild makes every table exact', async () => {
    await seed();
    await refreshAll(db.pool, NEW_YORK);
    await assertRollupsMatchOracle(db.pool, NEW_YORK);
    await seed(7); // more rows, written after the rollups were built
    const before = await tableContents();

    for (const def of builtinRollups) {
      const refusal = refreshRollup(db.pool, def, { timezone: KATHMANDU, mode: { kind: 'incremental' } });
      await expect(refusal).rejects.toBeInstanceOf(RollupRebuildRequiredError);
      await expect(refusal).rejects.toThrow(
        `analytics.${def.name} needs a rebuild: ANALYTICS_TIMEZONE changed from ${NEW_YORK} to ${KATHMANDU}`,
      );
      await expect(refusal).rejects.toThrow(`aggjobs rollups rebuild --rollup ${def.name}`);
      // A window refresh (a backfill) would mix the zones too.
      await expect(
        refreshRollup(db.pool, def, {
          timezone: KATHMANDU,
          mode: { kind: 'window', start: new Date('2026-05-01Z'), end: new Date('2026-05-03Z') },
        }),
      ).rejects.toBeInstanceOf(RollupRebuildRequiredError);
    }
    expect(await tableContents()).toBe(before); // nothing was written

    // The dashboard and the health check show it, with the command.
    const statuses = await rollupStatuses(db.pool, builtinRollups, KATHMANDU);
    expect(statuses.every((s) => s.rebuild?.command === `aggjobs rollups rebuild --rollup ${s.table}`)).toBe(
      true,
    );
    const health = await healthReport(db.pool, {
      settings: { analyticsTimezone: KATHMANDU },
      definitions: builtinRollups,
    });
    expect(health.checks.rollup_identity?.status).toBe('unhealthy');
    expect(health.checks.rollup_identity?.detail).toMatch(
      /analytics\.execution_metrics_daily needs a rebuild \(ANALYTICS_TIMEZONE changed from America\/New_York to Asia\/Kathmandu.*run aggjobs rollups rebuild --rollup execution_metrics_daily/,
    );

    const out = aggjobs(['rollups', 'rebuild'], { ANALYTICS_TIMEZONE: KATHMANDU });
    expect(out.stderr).toMatch(
      /rebuilding analytics\.execution_metrics_hourly in Asia\/Kathmandu: 240 source row\(s\)/,
    );
    expect(out.status).toBe(0);
    const results = JSON.parse(out.stdout) as Array<{
      rollup: string;
      rowsWritten: number;
      sourceRows: number;
    }>;
    expect(results.map((r) => r.rollup)).toEqual(builtinRollups.map((d) => d.name));
    await assertRollupsMatchOracle(db.pool, KATHMANDU);
    expect((await rollupStatuses(db.pool, builtinRollups, KATHMANDU)).every((s) => s.rebuild === null)).toBe(
      true,
    );

    // Incremental refreshes go on in the new zone, exact.
    await seed(11);
    await db.pool.query(
      `UPDATE public.execution_logs SET started_at = started_at + interval '5 hours' WHERE id % 7 = 0`,
    );
    await db.pool.query(`DELETE FROM public.user_activity_events WHERE id % 5 = 0`);
    await refreshAll(db.pool, KATHMANDU);
    await assertRollupsMatchOracle(db.pool, KATHMANDU);
    // And going back to New York is refused in turn.
    await expect(refreshAll(db.pool, NEW_YORK)).rejects.toThrow(/from Asia\/Kathmandu to America\/New_York/);
  });

  it('a rebuild keeps frozen buckets (their source rows are gone) and says so; --drop-frozen deletes them', async () => {
    await seed();
    await refreshAll(db.pool, NEW_YORK);
    // Retention: the watermark first, then the deletes the engine ignores.
    const cutoff = new Date('2026-05-02T12:00:00Z');
    await db.pool.query(
      `INSERT INTO aggjobs.retention_watermarks (source_table, cutoff) VALUES ('public.execution_logs', $1)`,
      [cutoff],
    );
    await db.pool.query(`BEGIN; SET LOCAL aggjobs.retention = 'on';
      DELETE FROM public.execution_logs WHERE started_at < '2026-05-02T12:00:00Z'; COMMIT`);
    const frozenBefore = await db.pool.query(
      `SELECT * FROM analytics.execution_metrics_daily WHERE bucket_start < $1 ORDER BY 1, 2`,
      [cutoff],
    );
    expect(frozenBefore.rows.length).toBeGreaterThan(0);
    const daily = builtinRollups.find((d) => d.name === 'execution_metrics_daily') as RollupDefinition;
    const result = await rebuildRollup(db.pool, daily, { timezone: KATHMANDU });
    expect(result.frozenRowsKept).toBe(frozenBefore.rows.length);
    expect(result.frozenRowsDropped).toBe(0);
    expect(result.changes.map((c) => c.what)).toEqual(['timezone']);
    const frozenAfter = await db.pool.query(
      `SELECT * FROM analytics.execution_metrics_daily WHERE bucket_start < $1 ORDER BY 1, 2`,
      [result.frozenBefore],
    );
    expect(frozenAfter.rows).toEqual(frozenBefore.rows);
    expect(
      await compareWithOracle(db.pool, KATHMANDU, {
        tables: [daily.name],
        frozenBefore: new Date(result.frozenBefore ?? 0),
      }),
    ).toEqual([]);

    const out = aggjobs(['rollups', 'rebuild', '--rollup', daily.name, '--drop-frozen'], {
      ANALYTICS_TIMEZONE: KATHMANDU,
    });
    expect(out.status).toBe(0);
    expect(out.stderr).toMatch(/row\(s\) of buckets before .* are dropped: they cannot be recomputed/);
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM analytics.execution_metrics_daily WHERE bucket_start < $1`,
      [result.frozenBefore],
    );
    expect(rows[0]?.n).toBe(0);
  });

  it('names an unknown rollup and exits 2', () => {
    const out = aggjobs(['rollups', 'rebuild', '--rollup', 'execution_metrics_hourlyy'], {});
    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(
      /--rollup must be one of execution_metrics_hourly, .*got "execution_metrics_hourlyy"/,
    );
  });
});

describe('a definition changed after its table has rows', () => {
  const custom: RollupDefinition = {
    name: 'workflow_runs_hourly',
    source: 'public.execution_logs',
    timeColumn: 'started_at',
    grain: 'hour',
    dimensions: [{ column: 'workflow_id', type: 'bigint' }],
    measures: [
      { name: 'runs', type: 'bigint', sql: 'count(*)' },
      { name: 'failures', type: 'bigint', sql: "count(*) FILTER (WHERE status = 'failed')" },
    ],
  };
  async function differences(def: RollupDefinition, oracle: string): Promise<unknown[]> {
    const cols = 'bucket_start, workflow_id, runs, failures';
    const { rows } = await db.pool.query(
      `(${oracle} EXCEPT SELECT ${cols} FROM analytics.${def.name})
       UNION ALL (SELECT ${cols} FROM analytics.${def.name} EXCEPT ${oracle})`,
    );
    return rows;
  }

  it('refuses a changed measure or grain, not a reformatted one; rebuild recomputes with the new definition', async () => {
    await installRollups(db.pool, [...builtinRollups, custom]);
    try {
      await seed();
      await refreshRollup(db.pool, custom, { timezone: 'UTC', mode: { kind: 'incremental' } });
      // Reformatted and reordered: the same rows. Not refused.
      const reformatted: RollupDefinition = {
        ...custom,
        measures: [
          { name: 'failures', type: 'BIGINT', sql: "COUNT( * ) filter (where status='failed')" },
          { name: 'runs', type: 'bigint', sql: ' count(*)\n' },
        ],
      };
      await seed(3);
      await refreshRollup(db.pool, reformatted, { timezone: 'UTC', mode: { kind: 'incremental' } });

      const changed: RollupDefinition = {
        ...custom,
        measures: [
          { name: 'runs', type: 'bigint', sql: "count(*) FILTER (WHERE status <> 'running')" },
          custom.measures[1] as RollupDefinition['measures'][number],
        ],
      };
      await seed(5);
      const refusal = refreshRollup(db.pool, changed, { timezone: 'UTC', mode: { kind: 'incremental' } });
      await expect(refusal).rejects.toBeInstanceOf(RollupRebuildRequiredError);
      await expect(refusal).rejects.toThrow(
        /analytics\.workflow_runs_hourly needs a rebuild: its definition changed \(fingerprint [0-9a-f]{16} → [0-9a-f]{16}; measure runs: count\(\*\) bigint → count\(\*\)filter\(where status<>'running'\) bigint\)\. Nothing was written\. Run `aggjobs rollups rebuild --rollup workflow_runs_hourly`/,
      );
      const daily: RollupDefinition = { ...custom, grain: 'day' };
      await expect(
        refreshRollup(db.pool, daily, { timezone: 'UTC', mode: { kind: 'incremental' } }),
      ).rejects.toThrow(/grain: hour → day/);

      const result = await rebuildRollup(db.pool, changed, { timezone: 'UTC' });
      expect(result.changes.map((c) => c.what)).toEqual(['definition']);
      const oracle = `SELECT date_trunc('hour', started_at, 'UTC') AS bucket_start, workflow_id,
                        count(*) FILTER (WHERE status <> 'running') AS runs,
                        count(*) FILTER (WHERE status = 'failed') AS failures
                      FROM public.execution_logs GROUP BY 1, 2`;
      expect(await differences(changed, oracle)).toEqual([]);
      await db.pool.query(`DELETE FROM public.execution_logs WHERE id % 4 = 1`);
      await refreshRollup(db.pool, changed, { timezone: 'UTC', mode: { kind: 'incremental' } });
      expect(await differences(changed, oracle)).toEqual([]);
    } finally {
      await db.pool.query('DROP TABLE IF EXISTS analytics.workflow_runs_hourly');
      await db.pool.query(`DELETE FROM aggjobs.rollup_state WHERE rollup = 'workflow_runs_hourly'`);
    }
  });

  it('a dimension added: rebuild creates the table again with the new key', async () => {
    await installRollups(db.pool, [...builtinRollups, custom]);
    try {
      await seed();
      await refreshRollup(db.pool, custom, { timezone: 'UTC', mode: { kind: 'incremental' } });
      const wider: RollupDefinition = {
        ...custom,
        dimensions: [...custom.dimensions, { column: 'workspace_id', type: 'bigint' }],
      };
      await expect(
        refreshRollup(db.pool, wider, { timezone: 'UTC', mode: { kind: 'incremental' } }),
      ).rejects.toThrow(/dimensions: workflow_id bigint → workflow_id bigint, workspace_id bigint/);
      const result = await rebuildRollup(db.pool, wider, { timezone: 'UTC' });
      expect(result.tableRecreated).toBe(true);
      await installRollups(db.pool, [...builtinRollups, wider]); // the table now matches
      await seed(9);
      await refreshRollup(db.pool, wider, { timezone: 'UTC', mode: { kind: 'incremental' } });
      const { rows } = await db.pool.query(`
        (SELECT date_trunc('hour', started_at, 'UTC') AS b, workflow_id, workspace_id, count(*) AS runs FROM public.execution_logs GROUP BY 1, 2, 3
         EXCEPT SELECT bucket_start, workflow_id, workspace_id, runs FROM analytics.workflow_runs_hourly)
        UNION ALL
        (SELECT bucket_start, workflow_id, workspace_id, runs FROM analytics.workflow_runs_hourly
         EXCEPT SELECT date_trunc('hour', started_at, 'UTC'), workflow_id, workspace_id, count(*) FROM public.execution_logs GROUP BY 1, 2, 3)`);
      expect(rows).toEqual([]);
    } finally {
      await db.pool.query('DROP TABLE IF EXISTS analytics.workflow_runs_hourly');
      await db.pool.query(`DELETE FROM aggjobs.rollup_state WHERE rollup = 'workflow_runs_hourly'`);
    }
  });
});

describe('another cluster, a restore, an upgrade', () => {
  const hourly = builtinRollups.find((d) => d.name === 'execution_metrics_hourly') as RollupDefinition;

  it('refuses rows recorded by another cluster (system identifier) and a snapshot from another id space', async () => {
    await seed();
    await refreshAll(db.pool, NEW_YORK);
    const { rows } = await db.pool.query<{ id: string }>(
      'SELECT system_identifier::text AS id FROM pg_control_system()',
    );
    expect(
      (await db.pool.query(`SELECT DISTINCT built_system_identifier::text AS id FROM aggjobs.rollup_state`))
        .rows,
    ).toEqual([{ id: rows[0]?.id }]);
    // What a pg_dump of another cluster restored here carries: its system identifier.
    await db.pool.query(`UPDATE aggjobs.rollup_state SET built_system_identifier = 6999999999999999999`);
    await seed(4);
    await expect(
      refreshRollup(db.pool, hourly, { timezone: NEW_YORK, mode: { kind: 'incremental' } }),
    ).rejects.toThrow(
      new RegExp(`the database cluster changed \\(system identifier 6999999999999999999 → ${rows[0]?.id}`),
    );
    const health = await healthReport(db.pool, {
      settings: { analyticsTimezone: NEW_YORK },
      definitions: builtinRollups,
    });
    expect(health.checks.rollup_identity?.status).toBe('unhealthy');
    const out = aggjobs(['rollups', 'rebuild'], { ANALYTICS_TIMEZONE: NEW_YORK });
    expect(out.status).toBe(0);
    await assertRollupsMatchOracle(db.pool, NEW_YORK);

    // A stored snapshot ending past this cluster's transaction ids (same system identifier).
    await db.pool.query(
      `UPDATE aggjobs.rollup_state SET snapshot = '4000000000:4000000000:'::pg_snapshot WHERE rollup = $1`,
      [hourly.name],
    );
    await expect(
      refreshRollup(db.pool, hourly, { timezone: NEW_YORK, mode: { kind: 'incremental' } }),
    ).rejects.toThrow(
      /its stored snapshot ends at transaction id 4000000000, which this cluster has not reached/,
    );
  });

  it('an install upgraded to migration 000009 (no identity recorded) adopts it once, without failing', async () => {
    await seed();
    await refreshAll(db.pool, NEW_YORK);
    await db.pool.query(
      'UPDATE aggjobs.rollup_state SET built_timezone = NULL, built_fingerprint = NULL, built_definition = NULL, built_system_identifier = NULL',
    );
    await seed(2);
    await refreshAll(db.pool, NEW_YORK);
    await assertRollupsMatchOracle(db.pool, NEW_YORK);
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM aggjobs.rollup_state
       WHERE built_timezone = $1 AND built_fingerprint IS NOT NULL AND built_system_identifier IS NOT NULL`,
      [NEW_YORK],
    );
    expect(rows[0]?.n).toBe(builtinRollups.length);
    await expect(refreshAll(db.pool, KATHMANDU)).rejects.toBeInstanceOf(RollupRebuildRequiredError);
  });

  it('pg_dump | pg_restore into a fresh database of this cluster: not refused, and exact afterwards', async () => {
    await seed();
    await refreshAll(db.pool, NEW_YORK);
    await seed(6); // written after the last refresh: must be taken by the first refresh after the restore
    await db.pool.query(`UPDATE public.execution_logs SET workspace_id = 9 WHERE id % 11 = 0`);
    await db.pool.query(`DELETE FROM public.credit_transactions WHERE id % 3 = 0`);
    const dir = mkdtempSync(join(tmpdir(), 'aggjobs-dump-'));
    const restored = `${db.name}_restored`;
    const urlOf = (database: string): string => {
      const url = new URL(db.url);
      url.pathname = `/${database}`;
      return url.toString();
    };
    // pg_dump refuses a server newer than itself: the tools of the server's own major version.
    const { rows: version } = await db.pool.query<{ n: number }>(
      `SELECT current_setting('server_version_num')::int AS n`,
    );
    const tools = findPgTools(Math.floor((version[0]?.n ?? 0) / 10_000));
    if (typeof tools === 'string') throw new Error(tools);
    const admin = new pg.Client({ connectionString: urlOf('postgres') });
    await admin.connect();
    try {
      const dump = spawnSync(tools.pgDump, ['-Fc', '-f', join(dir, 'db.dump'), db.url], { encoding: 'utf8' });
      expect(dump.stderr).toBe('');
      expect(dump.status).toBe(0);
      await admin.query(`CREATE DATABASE "${restored}" TEMPLATE template0`);
      const restoredUrl = urlOf(restored);
      const restore = spawnSync(tools.pgRestore, ['--no-owner', '-d', restoredUrl, join(dir, 'db.dump')], {
        encoding: 'utf8',
      });
      expect(restore.stderr).toBe('');
      expect(restore.status).toBe(0);
      const pool = createPool({ connectionString: restoredUrl, max: 2 });
      try {
        // The restored rows keep their aggjobs_xid and the state its snapshot: ids of this same
        // cluster, all in its past. Writes in the restored database get ids beyond them.
        await pool.query(
          `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms)
           SELECT 2, 1, 1, 'success', timestamptz '2026-05-01 09:00Z' + make_interval(mins => i * 17), 5 FROM generate_series(1, 30) i`,
        );
        await pool.query(`DELETE FROM public.user_activity_events WHERE id % 4 = 0`);
        await pool.query(
          `UPDATE public.execution_logs SET started_at = started_at - interval '1 day' WHERE id % 13 = 0`,
        );
        // Same cluster: the recorded identity still holds, so the refresh goes on incrementally.
        const { rows } = await pool.query<{ same: boolean }>(
          `SELECT bool_and(built_system_identifier = (SELECT system_identifier FROM pg_control_system())) AS same
           FROM aggjobs.rollup_state`,
        );
        expect(rows[0]?.same).toBe(true);
        await refreshAll(pool, NEW_YORK);
        await assertRollupsMatchOracle(pool, NEW_YORK);
      } finally {
        await pool.end();
      }
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS "${restored}" WITH (FORCE)`);
      await admin.end();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
