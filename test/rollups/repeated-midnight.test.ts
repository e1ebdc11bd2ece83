/**
 * Where the clocks go back to a midnight (01:00 becomes 00:00 again), PostgreSQL's date_trunc labels
 * that day with the second midnight, and the plain GROUP BY puts the rows of the first 00:xx in it: a
 * day bucket holds an hour of rows from before its label. The engine recomputed a changed group from
 * the rows between its label and the next one, and so dropped that hour from the day and counted it
 * in the day before (a late update there wrote wrong rows silently, found by this test). Random rows
 * and changes packed around that midnight, incremental and window refreshes, against the oracle.
 */
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { builtinRollups, refreshRollup } from '../../src/rollups/index.ts';
import { createTestDatabase } from '../support/database.ts';
import { compareWithOracle } from '../support/oracle.ts';
import { refreshAll, resetData } from '../support/rollup-helpers.ts';

const db = await createTestDatabase();
const RUNS = Number(process.env.PROPERTY_RUNS ?? 300) / 10;

type Op =
  | { op: 'insert'; ws: number; minute: number; duration: number }
  | { op: 'update'; pick: number; duration: number }
  | { op: 'move'; pick: number; minute: number }
  | { op: 'delete'; pick: number }
  | { op: 'window'; rollup: number; from: number; to: number }
  | { op: 'refresh' };

/** Minutes from 36 hours before the repeated midnight to 36 hours after. */
const minute = fc.integer({ min: -36 * 60, max: 36 * 60 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant('insert' as const),
      ws: fc.integer({ min: 1, max: 2 }),
      minute,
      duration: fc.nat(1000),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('update' as const), pick: fc.nat(1000), duration: fc.nat(1000) }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('move' as const), pick: fc.nat(1000), minute }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), pick: fc.nat(1000) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('window' as const),
      rollup: fc.nat(builtinRollups.length - 1),
      from: minute,
      to: minute,
    }),
  },
  { weight: 2, arbitrary: fc.constant({ op: 'refresh' as const }) },
);

/** The nth row, counted in id order (wrapping), or nothing when the table is empty. */
const nth = `(SELECT id FROM public.execution_logs ORDER BY id OFFSET $1 % greatest((SELECT count(*) FROM public.execution_logs), 1) LIMIT 1)`;

async function apply(op: Op, at: (minute: number) => string, zone: string): Promise<void> {
  switch (op.op) {
    case 'insert':
      await db.pool.query(
        `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms)
         VALUES ($1, 1, 1, 'success', $2, $3)`,
        [op.ws, at(op.minute), op.duration],
      );
      return;
    case 'update':
      await db.pool.query(`UPDATE public.execution_logs SET duration_ms = $2 WHERE id = ${nth}`, [
        op.pick,
        op.duration,
      ]);
      return;
    case 'move':
      await db.pool.query(`UPDATE public.execution_logs SET started_at = $2 WHERE id = ${nth}`, [
        op.pick,
        at(op.minute),
      ]);
      return;
    case 'delete':
      await db.pool.query(`DELETE FROM public.execution_logs WHERE id = ${nth}`, [op.pick]);
      return;
    case 'window': {
      const def = builtinRollups[op.rollup];
      if (def === undefined) return;
      const [from, to] = op.from <= op.to ? [op.from, op.to] : [op.to, op.from];
      await refreshRollup(db.pool, def, {
        timezone: zone,
        mode: { kind: 'window', start: new Date(at(from)), end: new Date(at(to)) },
      });
      return;
    }
    case 'refresh':
      await refreshAll(db.pool, zone);
  }
}

describe.each([
  // 2025-11-02: 01:00 CDT (05:00Z) becomes 00:00 CST; the first midnight is 04:00Z.
  { zone: 'America/Havana', firstMidnight: '2025-11-02T04:00:00Z' },
  // 2026-10-25: 01:00 (01:00Z) becomes 00:00 (UTC-1); the first midnight is 00:00Z.
  { zone: 'Atlantic/Azores', firstMidnight: '2026-10-25T00:00:00Z' },
])('day, week and month rollups around a repeated midnight ($zone)', ({ zone, firstMidnight }) => {
  const at = (m: number): string => new Date(Date.parse(firstMidnight) + m * 60_000 + 17_000).toISOString();
  beforeEach(async () => {
    await resetData(db.pool);
  });

  it('the day holds the rows of the first 00:xx under a label an hour later (PostgreSQL)', async () => {
    const { rows } = await db.pool.query<{ label: Date }>(
      `SELECT date_trunc('day', $1::timestamptz, $2) AS label`,
      [at(30), zone],
    );
    expect(rows[0]?.label.getTime()).toBe(Date.parse(firstMidnight) + 3_600_000);
  });

  it(`equal a plain GROUP BY after random changes (${RUNS} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 40 }), async (ops) => {
        await resetData(db.pool);
        await refreshAll(db.pool, zone); // the initial run: the rest is incremental
        for (const op of ops) {
          await apply(op, at, zone);
          if (op.op === 'refresh') expect(await compareWithOracle(db.pool, zone)).toEqual([]);
        }
        await refreshAll(db.pool, zone);
        expect(await compareWithOracle(db.pool, zone)).toEqual([]);
      }),
      { numRuns: RUNS },
    );
  }, 300_000);
});
