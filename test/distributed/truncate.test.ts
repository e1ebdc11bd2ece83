import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseSettings } from '../../src/config/index.ts';
import {
  builtinRollups,
  prepareDatabase,
  rebuildRollup,
  refreshRollup,
  RollupRebuildRequiredError,
  type RefreshResult,
  type RollupDefinition,
} from '../../src/rollups/index.ts';
import { compareWithOracle } from '../support/oracle.ts';
import { resetData } from '../support/rollup-helpers.ts';
import { createCitusTestDatabase, queryWorker, type CitusTestDatabase } from './citus-database.ts';
import { apply as applyOn, opArb, ZONE, type Op } from './citus-ops.ts';

// A TRUNCATE of a distributed source: no row trigger sees the rows it removes.
// - Of the distributed table (on the coordinator): a statement trigger on it records the TRUNCATE
//   in aggjobs.source_truncations, as on one server; the rollups of that source refuse (naming the
//   table and `aggjobs rollups rebuild`) until rebuilt, the others go on.
// - Of one shard on its node (an operator's TRUNCATE of a shard, with
//   citus.enable_manual_changes_to_shards on, that Citus gave the trigger, as it does a shard a move creates): recorded in the node's aggjobs_node.truncations; that node's
//   next refresh recomputes the shard whole.
// Checked against the oracle (a plain GROUP BY on the coordinator over all source rows).

const checked = builtinRollups.filter((d) => d.grain === 'hour' || d.grain === 'day');
const hourly = builtinRollups.find((d) => d.name === 'execution_metrics_hourly') as RollupDefinition;

let db: CitusTestDatabase;
const apply = (op: Op): Promise<void> => applyOn(db.pool, op);
beforeAll(async () => {
  db = await createCitusTestDatabase();
  await prepareDatabase(db.pool, parseSettings({}));
});

const refreshOne = (def: RollupDefinition): Promise<RefreshResult> =>
  refreshRollup(db.pool, def, { timezone: ZONE, mode: { kind: 'incremental' } });

async function refresh(defs: readonly RollupDefinition[] = checked): Promise<RefreshResult[]> {
  const results: RefreshResult[] = [];
  for (const def of defs) results.push(await refreshOne(def));
  return results;
}

const oracleDiff = (defs: readonly RollupDefinition[] = checked): Promise<unknown[]> =>
  compareWithOracle(db.pool, ZONE, { tables: defs.map((d) => d.name) });

const recomputedWhole = (r: RefreshResult | undefined): number =>
  (r?.nodes ?? []).reduce((n, node) => n + node.shardsRecomputed, 0);

describe('TRUNCATE of a distributed source', () => {
  it('refuses the rollups of that source until rebuilt, naming the table; the rebuild is exact, after random writes around it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 5, maxLength: 20 }),
        fc.array(opArb, { minLength: 1, maxLength: 10 }),
        fc.constantFrom('public.execution_logs', 'public.user_activity_events', 'public.credit_transactions'),
        async (before, after, truncated) => {
          await resetData(db.pool);
          for (const op of before) await apply(op);
          await refresh();
          expect(await oracleDiff()).toEqual([]);

          await db.pool.query(`TRUNCATE ${truncated}`);
          for (const op of after) await apply(op);
          for (const def of checked) {
            if (def.source !== truncated) {
              await refreshOne(def);
              expect(await oracleDiff([def])).toEqual([]);
              continue;
            }
            const refused = await refreshOne(def).then(
              () => undefined,
              (error: unknown) => error,
            );
            expect(refused, def.name).toBeInstanceOf(RollupRebuildRequiredError);
            expect((refused as Error).message).toContain(`${truncated} was truncated`);
            expect((refused as Error).message).toContain(`aggjobs rollups rebuild --rollup ${def.name}`);
            await rebuildRollup(db.pool, def, { timezone: ZONE });
            expect(await oracleDiff([def])).toEqual([]);
          }
          // Rebuilt: incremental again, exact.
          for (const op of after) await apply(op);
          await refresh();
          expect(await oracleDiff()).toEqual([]);
        },
      ),
      { numRuns: Number(process.env.CITUS_PROPERTY_RUNS ?? 3) },
    );
  });

  it('a TRUNCATE of the distributed table sent to a worker node is refused, naming the coordinator; nothing changes', async () => {
    await resetData(db.pool);
    await apply({
      op: 'insert',
      table: 'execution_logs',
      ws: 3,
      user: 1,
      at: '2026-10-27T10:00:00Z',
      status: 'success',
      n: 4,
    });
    await refreshOne(hourly);
    const [worker] = db.ports.workerPorts as [number];
    await expect(queryWorker(db, worker, 'TRUNCATE public.execution_logs')).rejects.toThrow(
      'TRUNCATE public.execution_logs on the Citus coordinator, not on a worker node',
    );
    const { rows } = await db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM public.execution_logs',
    );
    expect(rows[0]?.n).toBe(4);
    const after = await refreshOne(hourly);
    expect(recomputedWhole(after)).toBe(0);
    expect(await oracleDiff([hourly])).toEqual([]);
  });

  it('a TRUNCATE rolled back changes nothing', async () => {
    await resetData(db.pool);
    await apply({
      op: 'insert',
      table: 'execution_logs',
      ws: 2,
      user: 1,
      at: '2026-10-27T10:00:00Z',
      status: 'success',
      n: 4,
    });
    await refreshOne(hourly);
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('TRUNCATE public.execution_logs');
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    const kept = await refreshOne(hourly);
    expect(recomputedWhole(kept)).toBe(0);
    expect(await oracleDiff([hourly])).toEqual([]);
  });

  it('a shard truncated on its node (one a move created): that node recomputes it whole, exact; the record is pruned', async () => {
    await resetData(db.pool);
    for (const ws of [1, 2, 3, 4, 5, 6])
      await apply({
        op: 'insert',
        table: 'execution_logs',
        ws,
        user: 1,
        at: '2026-10-27T10:00:00Z',
        status: 'success',
        n: 3,
      });
    const { rows } = await db.pool.query<{ shardid: string; port: number }>(
      `SELECT s.shardid::text AS shardid, n.nodeport AS port
       FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
       WHERE s.logicalrelid = 'public.execution_logs'::regclass
         AND s.shardid = get_shard_id_for_distribution_column('public.execution_logs', 1::bigint)`,
    );
    const shard = rows[0];
    if (shard === undefined) throw new Error('no shard for workspace 1');
    const to = db.ports.workerPorts.find((p) => p !== shard.port);
    if (to === undefined) throw new Error('one worker only');
    await db.pool.query(
      `SELECT citus_move_shard_placement($1::bigint, '127.0.0.1', $2, '127.0.0.1', $3, shard_transfer_mode => 'block_writes')`,
      [shard.shardid, shard.port, to],
    );
    await refreshOne(hourly);
    expect(await oracleDiff([hourly])).toEqual([]);

    const name = `execution_logs_${shard.shardid}`;
    const triggers = await queryWorker(
      db,
      to,
      `SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.${name}'::regclass`,
    );
    expect(triggers.map((t) => String(t.tgname))).toContain(`aggjobs_log_truncate_${shard.shardid}`);
    // Citus refuses it unless the operator says so.
    await queryWorker(db, to, `SET citus.enable_manual_changes_to_shards = on; TRUNCATE public.${name}`);
    const after = await refreshOne(hourly);
    const node = after.nodes?.find((n) => n.node === `127.0.0.1:${to}`);
    expect(node?.shardsRecomputed).toBe(1);
    expect(await oracleDiff([hourly])).toEqual([]);

    const again = await refreshOne(hourly);
    expect(recomputedWhole(again)).toBe(0);
    // Pruned once every rollup of the source on the node saw it.
    for (const def of builtinRollups.filter((d) => d.source === 'public.execution_logs'))
      await refreshOne(def);
    const left = await queryWorker(
      db,
      to,
      `SELECT count(*)::int AS n FROM aggjobs_node.truncations WHERE source_table = 'public.${name}'`,
    );
    expect(left[0]?.n).toBe(0);
  });
});
