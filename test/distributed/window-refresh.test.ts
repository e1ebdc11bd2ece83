import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseSettings } from '../../src/config/index.ts';
import { builtinRollups, prepareDatabase, refreshRollup } from '../../src/rollups/index.ts';
import { compareWithOracle } from '../support/oracle.ts';
import { resetData } from '../support/rollup-helpers.ts';
import { createCitusTestDatabase, type CitusTestDatabase } from './citus-database.ts';
import { apply as applyOn, BASE, opArb, ZONE, type Op } from './citus-ops.ts';

// Window refreshes on Citus, through the coordinator, checked against the oracle (a plain GROUP BY
// run on the coordinator) after random writes. The incremental path: incremental-refresh.test.ts.

const WINDOW = {
  kind: 'window',
  start: new Date(BASE - 86_400_000),
  end: new Date(BASE + 12 * 86_400_000),
} as const;
const RUNS = Number(process.env.CITUS_PROPERTY_RUNS ?? 12);
const checked = builtinRollups.filter((d) => d.grain === 'hour' || d.grain === 'day');

let db: CitusTestDatabase;
const apply = (op: Op): Promise<void> => applyOn(db.pool, op);
beforeAll(async () => {
  db = await createCitusTestDatabase();
  await prepareDatabase(db.pool, parseSettings({}));
});

/**
 * Refreshes the window of each rollup; each reports the groups it computed: the rows the window
 * holds after it (counted from the rows stored before it wrote, which Citus runs as a step apart).
 */
async function refreshWindows(): Promise<void> {
  for (const def of checked) {
    const result = await refreshRollup(db.pool, def, { timezone: ZONE, mode: WINDOW });
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM analytics.${def.name} WHERE bucket_start >= $1 AND bucket_start < $2`,
      [result.window?.start, result.window?.end],
    );
    expect(result.groupsRecomputed, def.name).toBe(rows[0]?.n);
  }
}

describe('window refresh on Citus', () => {
  it('equals the oracle for the hourly and daily rollups after random inserts, late rows, updates and deletes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 3, maxLength: 14 }),
        fc.array(opArb, { minLength: 1, maxLength: 10 }),
        async (first, second) => {
          await resetData(db.pool);
          for (const op of first) await apply(op);
          await refreshWindows();
          expect(await compareWithOracle(db.pool, ZONE, { tables: checked.map((d) => d.name) })).toEqual([]);
          // Late rows, updates and deletes after the first refresh: the next window refresh repairs
          // every group they touched, including groups left without rows.
          for (const op of second) await apply(op);
          await refreshWindows();
          expect(await compareWithOracle(db.pool, ZONE, { tables: checked.map((d) => d.name) })).toEqual([]);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('ran each statement on the workers: the rollup rows are in shards on both workers', async () => {
    const { rows } = await db.pool.query<{ nodes: number; rows: string }>(
      `SELECT count(DISTINCT s.nodeport)::int AS nodes, sum(s.shard_size)::text AS rows
       FROM citus_shards s WHERE s.table_name = 'analytics.execution_metrics_hourly'::regclass`,
    );
    expect(rows[0]?.nodes).toBe(2);
  });
});
