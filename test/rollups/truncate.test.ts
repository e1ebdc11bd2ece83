import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  builtinRollups,
  pruneSeenTruncations,
  rebuildRollup,
  refreshRollup,
  RollupRebuildRequiredError,
} from '../../src/rollups/index.ts';
import { rollupStatuses } from '../../src/web/queries/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { healthReport } from '../support/health.ts';
import { assertRollupsMatchOracle, compareWithOracle } from '../support/oracle.ts';
import { refreshAll, resetData } from '../support/rollup-helpers.ts';

/**
 * TRUNCATE of a source fires no DELETE trigger, so change capture cannot see which groups lost
 * rows. Migration 000013 records it; a refresh of a rollup built before it refuses, naming the
 * table and `aggjobs rollups rebuild`, and the rebuild makes the tables equal the oracle again.
 */
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
beforeEach(async () => {
  await resetData(db.pool);
});

const ZONE = 'UTC';
const EVENTS = 'public.user_activity_events';
const onEvents = builtinRollups.filter((d) => d.source === EVENTS);
const others = builtinRollups.filter((d) => d.source !== EVENTS);

async function seed(offsetMinutes: number): Promise<void> {
  await db.pool.query(
    `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
     SELECT 1 + i % 3, i % 5, i % 4, 'success', timestamptz '2026-05-01' + make_interval(mins => $1 + i * 37), i, 1
     FROM generate_series(1, 100) i;
     INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, session_id, occurred_at)
     SELECT 1 + i % 2, i % 6, 'view', 's' || (i % 9), timestamptz '2026-05-01' + make_interval(mins => $1 + i * 41)
     FROM generate_series(1, 80) i`.replaceAll('$1', String(offsetMinutes)),
  );
}

async function contents(names: readonly string[]): Promise<string> {
  const parts: string[] = [];
  for (const name of names) {
    const { rows } = await db.pool.query(`SELECT * FROM analytics.${name} ORDER BY 1, 2, 3`);
    parts.push(JSON.stringify(rows));
  }
  return parts.join('\n');
}

describe('TRUNCATE of a source table', () => {
  it('refuses the rollups of that source before writing, names the table and the fix; rebuild makes them exact', async () => {
    expect(onEvents.length).toBeGreaterThan(0);
    await seed(0);
    await refreshAll(db.pool, ZONE);
    await assertRollupsMatchOracle(db.pool, ZONE);

    await db.pool.query(`TRUNCATE ${EVENTS}`);
    await seed(5); // rows written after the truncation, in the same buckets
    // Before the fix, the next refresh added the new rows to the old groups: wrong rows, silently.
    expect(await compareWithOracle(db.pool, ZONE)).not.toEqual([]);
    const before = await contents(onEvents.map((d) => d.name));

    for (const def of onEvents) {
      const refusal = refreshRollup(db.pool, def, { timezone: ZONE, mode: { kind: 'incremental' } });
      await expect(refusal).rejects.toBeInstanceOf(RollupRebuildRequiredError);
      await expect(refusal).rejects.toThrow(
        new RegExp(
          `analytics\\.${def.name} needs a rebuild: public\\.user_activity_events was truncated at 20`,
        ),
      );
      await expect(refusal).rejects.toThrow(`aggjobs rollups rebuild --rollup ${def.name}`);
    }
    expect(await contents(onEvents.map((d) => d.name))).toBe(before); // nothing was written
    // The rollups of the other sources go on, exact.
    for (const def of others)
      await refreshRollup(db.pool, def, { timezone: ZONE, mode: { kind: 'incremental' } });
    expect(await compareWithOracle(db.pool, ZONE, { tables: others.map((d) => d.name) })).toEqual([]);

    // The dashboard and the health check show it, with the command.
    const statuses = await rollupStatuses(db.pool, builtinRollups, ZONE);
    expect(
      statuses
        .filter((s) => s.rebuild !== null)
        .map((s) => s.table)
        .sort(),
    ).toEqual(onEvents.map((d) => d.name).sort());
    const health = await healthReport(db.pool, {
      settings: { analyticsTimezone: ZONE },
      definitions: builtinRollups,
    });
    expect(health.checks.rollup_identity?.status).toBe('unhealthy');
    expect(health.checks.rollup_identity?.detail).toMatch(/public\.user_activity_events was truncated at/);

    for (const def of onEvents) await rebuildRollup(db.pool, def, { timezone: ZONE });
    await assertRollupsMatchOracle(db.pool, ZONE);
    expect((await rollupStatuses(db.pool, builtinRollups, ZONE)).every((s) => s.rebuild === null)).toBe(true);

    // Incremental refreshes go on, exact: deletes and late rows after the rebuild.
    await db.pool.query(`DELETE FROM ${EVENTS} WHERE id % 4 = 0`);
    await seed(9);
    await refreshAll(db.pool, ZONE);
    await assertRollupsMatchOracle(db.pool, ZONE);
  });

  it('the daily cleanup forgets a truncation only once every rollup of the source sees it', async () => {
    expect(onEvents.length).toBeGreaterThan(1);
    await seed(0);
    await refreshAll(db.pool, ZONE);
    await db.pool.query(`TRUNCATE ${EVENTS}`);
    const { rows } = await db.pool.query<{ id: string }>(
      `SELECT max(id)::text AS id FROM aggjobs.source_truncations WHERE source_table = $1`,
      [EVENTS],
    );
    const recorded = async (): Promise<boolean> =>
      (await db.pool.query(`SELECT FROM aggjobs.source_truncations WHERE id = $1`, [rows[0]?.id]))
        .rowCount === 1;
    expect(await recorded()).toBe(true);
    await seed(5);

    const [first, ...rest] = onEvents;
    if (first === undefined) throw new Error('no rollup of the events');
    await rebuildRollup(db.pool, first, { timezone: ZONE });
    await pruneSeenTruncations(db.pool);
    expect(await recorded()).toBe(true); // the others are still refused for it
    for (const def of rest)
      await expect(
        refreshRollup(db.pool, def, { timezone: ZONE, mode: { kind: 'incremental' } }),
      ).rejects.toBeInstanceOf(RollupRebuildRequiredError);

    for (const def of rest) await rebuildRollup(db.pool, def, { timezone: ZONE });
    expect(await pruneSeenTruncations(db.pool)).toBeGreaterThan(0);
    expect(await recorded()).toBe(false);
    // Nothing is refused for it any more, and the rollups go on exact.
    await db.pool.query(`DELETE FROM ${EVENTS} WHERE id % 3 = 0`);
    await seed(7);
    await refreshAll(db.pool, ZONE);
    await assertRollupsMatchOracle(db.pool, ZONE);
  });

  it('a TRUNCATE rolled back is not recorded: the rollups go on', async () => {
    await seed(0);
    await refreshAll(db.pool, ZONE);
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`TRUNCATE ${EVENTS}`);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    await seed(3);
    await refreshAll(db.pool, ZONE);
    await assertRollupsMatchOracle(db.pool, ZONE);
  });
});
