import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  builtinRollups,
  installRollups,
  rebuildRollup,
  refreshRollup,
  type RollupDefinition,
} from '../../src/rollups/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { assertRollupsMatchOracle, oracleQueries } from '../support/oracle.ts';
import { resetData } from '../support/rollup-helpers.ts';

/**
 * A rollup with per-group state (deltaState, docs/delta-state.md) applies changed rows to the
 * touched groups; it must equal the plain GROUP BY as the recomputing rollups do.
 */
const ZONE = 'America/New_York';
const hourly = builtinRollups.find((d) => d.name === 'execution_metrics_hourly');
if (hourly === undefined) throw new Error('no execution_metrics_hourly');
const stateful: RollupDefinition = { ...hourly, name: 'execution_metrics_hourly_state', deltaState: true };
const oracles = { execution_metrics_hourly_state: oracleQueries.execution_metrics_hourly ?? '' };
const only = { tables: ['execution_metrics_hourly_state'], oracles };

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await installRollups(db.pool, [...builtinRollups, stateful]);
});
beforeEach(async () => {
  await resetData(db.pool);
  await db.pool.query('TRUNCATE analytics.execution_metrics_hourly_state');
});

async function refresh(): Promise<Awaited<ReturnType<typeof refreshRollup>>> {
  return refreshRollup(db.pool, stateful, { timezone: ZONE, mode: { kind: 'incremental' } });
}

async function seed(): Promise<void> {
  await db.pool.query(
    `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
     SELECT 1 + i % 3, i % 7, i % 4, (ARRAY['success','failed','timeout','running'])[1 + i % 4],
            timestamptz '2026-10-31 20:00Z' + make_interval(mins => i * 7),
            CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 37) % 1000 END, (i % 13) * 1.25
     FROM generate_series(1, 400) i`,
  );
}

describe('per-group state (deltaState)', () => {
  it('applies updates, deletes, moves and key changes to the groups exactly', async () => {
    await seed();
    expect((await refresh()).mode).toBe('initial');
    await assertRollupsMatchOracle(db.pool, ZONE, only);

    await db.pool.query(
      `UPDATE public.execution_logs SET duration_ms = coalesce(duration_ms, 0) + 1, credits_used = credits_used + 1 WHERE id % 9 = 0`,
    );
    const updated = await refresh();
    expect(updated.groupsApplied).toBeGreaterThan(0);
    expect(updated.groupsApplied).toBe(updated.groupsRecomputed);
    await assertRollupsMatchOracle(db.pool, ZONE, only);

    await db.pool.query(
      `UPDATE public.execution_logs SET duration_ms = NULL, user_id = user_id + 100 WHERE id % 5 = 0`,
    );
    await db.pool.query(`DELETE FROM public.execution_logs WHERE id % 6 = 0`);
    await db.pool.query(
      `UPDATE public.execution_logs SET id = id + 1000000, started_at = started_at - interval '3 hours', workspace_id = 1 WHERE id % 8 = 1`,
    );
    expect((await refresh()).groupsApplied).toBeGreaterThan(0);
    await assertRollupsMatchOracle(db.pool, ZONE, only);

    // A whole group deleted: its row goes.
    await db.pool.query(`DELETE FROM public.execution_logs WHERE workspace_id = 2`);
    const emptied = await refresh();
    expect(emptied.rowsDeleted).toBeGreaterThan(0);
    await assertRollupsMatchOracle(db.pool, ZONE, only);
  });

  it('recomputes a group a window refresh wrote since the snapshot instead of applying its changes twice', async () => {
    await seed();
    await refresh();
    await db.pool.query(
      `UPDATE public.execution_logs SET duration_ms = 5000, status = 'failed' WHERE id % 4 = 0`,
    );
    // The window sees the update; the next incremental run must not apply it again.
    await refreshRollup(db.pool, stateful, {
      timezone: ZONE,
      mode: { kind: 'window', start: new Date('2026-10-31T00:00Z'), end: new Date('2026-11-04T00:00Z') },
    });
    await assertRollupsMatchOracle(db.pool, ZONE, only);
    const next = await refresh();
    expect(next.groupsApplied).toBe(0);
    await assertRollupsMatchOracle(db.pool, ZONE, only);
    // Then the groups take changes by state again.
    await db.pool.query(`UPDATE public.execution_logs SET duration_ms = 7 WHERE id % 10 = 3`);
    expect((await refresh()).groupsApplied).toBeGreaterThan(0);
    await assertRollupsMatchOracle(db.pool, ZONE, only);
  });

  it('refuses at install, naming the rule, a measure, a column or a source the state cannot keep', async () => {
    const before = await db.pool.query(`SELECT count(*) FROM aggjobs.rollup_state`);
    const refused = async (def: RollupDefinition, message: RegExp): Promise<void> => {
      await expect(installRollups(db.pool, [def])).rejects.toThrow(message);
    };
    await refused(
      {
        ...stateful,
        name: 'avg_state',
        measures: [{ name: 'avg_ms', type: 'numeric', sql: 'avg(duration_ms)' }],
      },
      /rollup "avg_state": measures\[\]\.sql of avg_ms must be one of count\(\*\).*got "avg\(duration_ms\)"/,
    );
    await refused(
      {
        ...stateful,
        name: 'two_filters_state',
        measures: [
          {
            name: 'failed_or_timed_out',
            type: 'bigint',
            sql: "count(*) FILTER (WHERE status = 'failed') + count(*) FILTER (WHERE status = 'timeout')",
          },
        ],
      },
      /rollup "two_filters_state": measures\[\]\.sql of failed_or_timed_out must be one of/,
    );
    const activity = builtinRollups.find((d) => d.name === 'user_activity_hourly');
    if (activity === undefined) throw new Error('no user_activity_hourly');
    await refused(
      { ...activity, name: 'activity_state', deltaState: true },
      /rollup "activity_state": a column read by .* must not be of a collatable type .*session_id of type text/,
    );
    await db.pool.query(
      `CREATE TABLE public.parted (id bigint, at timestamptz NOT NULL, workspace_id bigint NOT NULL, n integer,
         PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
       CREATE TABLE public.parted_all PARTITION OF public.parted DEFAULT`,
    );
    await refused(
      {
        name: 'parted_state',
        source: 'public.parted',
        timeColumn: 'at',
        grain: 'hour',
        dimensions: [{ column: 'workspace_id', type: 'bigint' }],
        measures: [{ name: 'n_sum', type: 'bigint', sql: 'sum(n)' }],
        deltaState: true,
      },
      /rollup "parted_state": deltaState must be off for a partitioned source, got public.parted/,
    );
    // Nothing was installed.
    expect((await db.pool.query(`SELECT count(*) FROM aggjobs.rollup_state`)).rows).toEqual(before.rows);
    expect((await db.pool.query(`SELECT to_regclass('analytics.parted_state') AS t`)).rows[0]).toEqual({
      t: null,
    });
  });

  it('turned on for rows built without it: refused until rebuilt, then applied', async () => {
    const plain: RollupDefinition = { ...hourly, name: 'execution_metrics_hourly_later' };
    await installRollups(db.pool, [...builtinRollups, stateful, plain]);
    await seed();
    await refreshRollup(db.pool, plain, { timezone: ZONE, mode: { kind: 'incremental' } });
    const later = { ...plain, deltaState: true };
    await installRollups(db.pool, [...builtinRollups, stateful, later]);
    await expect(
      refreshRollup(db.pool, later, { timezone: ZONE, mode: { kind: 'incremental' } }),
    ).rejects.toThrow(
      /per-group state: off → on.*aggjobs rollups rebuild --rollup execution_metrics_hourly_later/s,
    );
    await rebuildRollup(db.pool, later, { timezone: ZONE });
    await db.pool.query(`UPDATE public.execution_logs SET duration_ms = 3 WHERE id % 7 = 2`);
    const applied = await refreshRollup(db.pool, later, { timezone: ZONE, mode: { kind: 'incremental' } });
    expect(applied.groupsApplied).toBeGreaterThan(0);
    await assertRollupsMatchOracle(db.pool, ZONE, {
      tables: ['execution_metrics_hourly_later'],
      oracles: { execution_metrics_hourly_later: oracleQueries.execution_metrics_hourly ?? '' },
    });
  });

  it('a measure that rounds its sum equals the GROUP BY: the state keeps the exact sum', async () => {
    const rounded: RollupDefinition = {
      ...stateful,
      name: 'rounded_state',
      measures: [
        { name: 'n', type: 'bigint', sql: 'count(*)' },
        { name: 'tenths', type: 'numeric', sql: 'sum(credits_used)::numeric(12,1)' },
        { name: 'whole', type: 'bigint', sql: 'sum(credits_used)::bigint' },
      ],
    };
    await installRollups(db.pool, [...builtinRollups, stateful, rounded]);
    const insert = (n: number): Promise<unknown> =>
      db.pool.query(
        `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, credits_used)
         SELECT 1, 1, 1, 'success', timestamptz '2026-11-01 10:00Z' + make_interval(secs => i), 0.04
         FROM generate_series(1, $1::int) i`,
        [n],
      );
    const oracle = `SELECT date_trunc('hour', started_at, $1) AS bucket_start, workspace_id, count(*) AS n,
                      sum(credits_used)::numeric(12,1) AS tenths, sum(credits_used)::bigint AS whole
                    FROM public.execution_logs GROUP BY 1, 2`;
    const options = { tables: ['rounded_state'], oracles: { rounded_state: oracle } };
    await insert(1);
    await refreshRollup(db.pool, rounded, { timezone: ZONE, mode: { kind: 'incremental' } });
    for (let i = 0; i < 3; i += 1) {
      await insert(7);
      await db.pool.query(
        `UPDATE public.execution_logs SET credits_used = credits_used + 0.03 WHERE id % 5 = 0`,
      );
      const run = await refreshRollup(db.pool, rounded, { timezone: ZONE, mode: { kind: 'incremental' } });
      expect(run.groupsApplied).toBe(1);
      await assertRollupsMatchOracle(db.pool, ZONE, options);
    }
  });

  it('applies only once capture has logged whole rows since before the stored snapshot', async () => {
    const late: RollupDefinition = { ...stateful, name: 'capture_state' };
    await installRollups(db.pool, [...builtinRollups, stateful, late]);
    // An install without any stateful rollup's definition, before either was first refreshed:
    // the capture goes back to group columns (an update that keeps its group logs nothing).
    await db.pool.query(
      `DELETE FROM aggjobs.rollup_state WHERE rollup <> $1 AND built_definition ->> 'deltaState' = 'true'`,
      [late.name],
    );
    await installRollups(db.pool, [...builtinRollups, late]);
    await installRollups(db.pool, builtinRollups);
    const options = {
      tables: ['capture_state'],
      oracles: { capture_state: oracleQueries.execution_metrics_hourly ?? '' },
    };
    const run = (): ReturnType<typeof refreshRollup> =>
      refreshRollup(db.pool, late, { timezone: ZONE, mode: { kind: 'incremental' } });
    await seed();
    await run();
    await db.pool.query(`UPDATE public.execution_logs SET duration_ms = 1 WHERE id % 4 = 0`);
    expect((await run()).groupsApplied).toBe(0); // recomputed: the old rows were not logged
    await assertRollupsMatchOracle(db.pool, ZONE, options);
    // Whole again: applied from the first snapshot that sees the switch, not before.
    await installRollups(db.pool, [...builtinRollups, late]);
    await db.pool.query(`UPDATE public.execution_logs SET duration_ms = 2 WHERE id % 4 = 1`);
    expect((await run()).groupsApplied).toBe(0);
    await assertRollupsMatchOracle(db.pool, ZONE, options);
    await db.pool.query(`UPDATE public.execution_logs SET duration_ms = 3 WHERE id % 4 = 2`);
    expect((await run()).groupsApplied).toBeGreaterThan(0);
    await assertRollupsMatchOracle(db.pool, ZONE, options);
    await installRollups(db.pool, [...builtinRollups, stateful]); // as the other tests expect
  });

  it('recomputes the group of a version never counted when a window wrote its row since (a row moved away)', async () => {
    await refresh(); // initial, on empty tables
    await seed();
    // The window writes the groups of rows the stored snapshot never saw.
    await refreshRollup(db.pool, stateful, {
      timezone: ZONE,
      mode: { kind: 'window', start: new Date('2026-10-31T00:00Z'), end: new Date('2026-11-04T00:00Z') },
    });
    // Updated, then moved out of its group: both old versions are ones the snapshot never counted.
    await db.pool.query(`UPDATE public.execution_logs SET status = 'timeout' WHERE id % 3 = 0`);
    await db.pool.query(
      `UPDATE public.execution_logs SET started_at = started_at - interval '2 days' WHERE id % 3 = 0`,
    );
    await refresh();
    await assertRollupsMatchOracle(db.pool, ZONE, only);
  });

  it("a source column's type changed: the refresh fails loudly, the rebuild makes the state's type follow", async () => {
    await db.pool.query(
      `CREATE TABLE public.readings (id bigserial PRIMARY KEY, at timestamptz NOT NULL, workspace_id bigint NOT NULL, v integer);
       INSERT INTO public.readings (at, workspace_id, v)
       SELECT timestamptz '2026-11-01 10:00Z' + make_interval(mins => i), 1 + i % 2, i FROM generate_series(1, 200) i`,
    );
    const readings: RollupDefinition = {
      name: 'readings_state',
      source: 'public.readings',
      timeColumn: 'at',
      grain: 'hour',
      dimensions: [{ column: 'workspace_id', type: 'bigint' }],
      measures: [
        { name: 'v_max', type: 'bigint', sql: 'max(v)' },
        { name: 'v_p50', type: 'double precision', sql: 'percentile_cont(0.5) WITHIN GROUP (ORDER BY v)' },
      ],
      deltaState: true,
    };
    const oracle = `SELECT date_trunc('hour', at, $1) AS bucket_start, workspace_id, max(v) AS v_max,
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS v_p50 FROM public.readings GROUP BY 1, 2`;
    const options = { tables: ['readings_state'], oracles: { readings_state: oracle } };
    const run = (): ReturnType<typeof refreshRollup> =>
      refreshRollup(db.pool, readings, { timezone: ZONE, mode: { kind: 'incremental' } });
    await installRollups(db.pool, [...builtinRollups, stateful, readings]);
    await run();
    await db.pool.query(`ALTER TABLE public.readings ALTER COLUMN v TYPE bigint`);
    await db.pool.query(`UPDATE public.readings SET v = v + 5000000000 WHERE id % 6 = 1`);
    await expect(run()).rejects.toThrow(/multiset_apply/);
    await rebuildRollup(db.pool, readings, { timezone: ZONE });
    await assertRollupsMatchOracle(db.pool, ZONE, options);
    await db.pool.query(`UPDATE public.readings SET v = v + 1 WHERE id % 6 = 2`);
    expect((await run()).groupsApplied).toBeGreaterThan(0);
    await assertRollupsMatchOracle(db.pool, ZONE, options);
  });
});
