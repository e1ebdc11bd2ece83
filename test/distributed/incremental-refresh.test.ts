import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseSettings } from '../../src/config/index.ts';
import {
  builtinRollups,
  prepareDatabase,
  refreshRollup,
  type RefreshResult,
  type RollupDefinition,
} from '../../src/rollups/index.ts';
import { compareWithOracle } from '../support/oracle.ts';
import { resetData } from '../support/rollup-helpers.ts';
import { createCitusTestDatabase, queryWorker, type CitusTestDatabase } from './citus-database.ts';
import { apply as applyOn, BASE, opArb, ZONE, type Op } from './citus-ops.ts';

// The incremental refresh on Citus: change capture per node, one refresh per worker node, each exact
// for its shards (src/rollups/citus-refresh.ts), checked against the oracle (a plain GROUP BY run on
// the coordinator over all source rows).

const RUNS = Number(process.env.CITUS_PROPERTY_RUNS ?? 10);
const checked = builtinRollups.filter((d) => d.grain === 'hour' || d.grain === 'day');
const hourly = builtinRollups.find((d) => d.name === 'execution_metrics_hourly') as RollupDefinition;

let db: CitusTestDatabase;
const apply = (op: Op): Promise<void> => applyOn(db.pool, op);
beforeAll(async () => {
  db = await createCitusTestDatabase();
  await prepareDatabase(db.pool, parseSettings({}));
});

async function refreshIncremental(defs: readonly RollupDefinition[] = checked): Promise<RefreshResult[]> {
  const results: RefreshResult[] = [];
  for (const def of defs)
    results.push(await refreshRollup(db.pool, def, { timezone: ZONE, mode: { kind: 'incremental' } }));
  return results;
}

async function oracleDiff(defs: readonly RollupDefinition[] = checked): Promise<unknown[]> {
  return compareWithOracle(db.pool, ZONE, { tables: defs.map((d) => d.name) });
}

/** The worker's next transaction id. */
async function nextXid(port: number): Promise<bigint> {
  const [row] = await queryWorker<{ next: string }>(
    db,
    port,
    'SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS next',
  );
  return BigInt(row?.next ?? '0');
}

/**
 * Makes the worker on `port` use up transaction ids (one committed transaction each) until its next
 * id is past `target`: the worker's counter is then ahead of the stamps a shard brings from a node
 * whose next id was `target`.
 */
async function advanceXidsPast(port: number, target: bigint): Promise<void> {
  const missing = target - (await nextXid(port)) + 1n;
  if (missing <= 0n) return;
  await queryWorker(
    db,
    port,
    `DO $$ BEGIN FOR i IN 1..${missing} LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$`,
  );
}

/** The worker (port) that holds the shard of `ws` in execution_logs, and the shard. */
async function shardOf(ws: number): Promise<{ shardid: string; port: number }> {
  const { rows } = await db.pool.query<{ shardid: string; port: number }>(
    `SELECT s.shardid::text AS shardid, n.nodeport AS port
     FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
     WHERE s.logicalrelid = 'public.execution_logs'::regclass
       AND s.shardid = get_shard_id_for_distribution_column('public.execution_logs', $1::bigint)`,
    [ws],
  );
  if (rows[0] === undefined) throw new Error(`no shard for workspace ${ws}`);
  return rows[0];
}

const insert = (ws: number, minutes: number, n = 1): Op => ({
  op: 'insert',
  table: 'execution_logs',
  ws,
  user: 1,
  at: new Date(BASE + minutes * 60_000).toISOString(),
  status: 'success',
  n,
});

describe('change capture on Citus', () => {
  it("stamps each source row with its writer's transaction id on the node that holds the shard", async () => {
    await resetData(db.pool);
    for (const ws of [1, 2, 3, 4, 5, 6]) await apply(insert(ws, ws * 90, 3));
    await apply({ op: 'finish', pick: 4, status: 'failed', duration: 1234 });
    await apply({ op: 'moveTime', table: 'execution_logs', pick: 7, at: new Date(BASE).toISOString() });
    // On the node, a row's xmin is the (32-bit) id of the transaction that last wrote it there: the
    // stamp must be that transaction's full id. A stamp from the coordinator would differ.
    const { rows } = await db.pool.query<{ nodeport: number; result: string; success: boolean }>(
      `SELECT nodeport, success, result FROM run_command_on_placements('public.execution_logs',
         $$SELECT count(*) || '/' || count(*) FILTER (WHERE aggjobs_xid IS NOT NULL
                  AND mod(aggjobs_xid::text::bigint, 4294967296) = xmin::text::bigint) FROM %s$$)`,
    );
    expect(rows.every((r) => r.success)).toBe(true);
    expect(new Set(rows.map((r) => r.nodeport)).size).toBe(2);
    for (const r of rows) {
      const [all, stamped] = r.result.split('/');
      expect(stamped).toBe(all);
    }
    const total = rows.reduce((s, r) => s + Number(r.result.split('/')[0]), 0);
    expect(total).toBe(18);
  });
});

describe('incremental refresh on Citus', () => {
  it('runs one refresh per worker node: the first recomputes every shard, the next only what changed', async () => {
    await resetData(db.pool);
    for (const ws of [1, 2, 3, 4, 5, 6]) await apply(insert(ws, ws * 90, 2));
    const [first] = await refreshIncremental([hourly]);
    expect(first?.mode).toBe('initial');
    expect(first?.nodes?.map((n) => n.node).sort()).toEqual(
      db.ports.workerPorts.map((p) => `127.0.0.1:${p}`).sort(),
    );
    expect(first?.nodes?.every((n) => n.shardsRecomputed === n.shards && n.shards > 0)).toBe(true);
    expect(await oracleDiff([hourly])).toEqual([]);

    // One new row in workspace 3: one group recomputed, on the node that holds its shard, from the
    // stamps and the node's snapshot; no shard recomputed whole.
    await apply(insert(3, 5000));
    const [second] = await refreshIncremental([hourly]);
    expect(second?.mode).toBe('incremental');
    expect(second?.groupsRecomputed).toBe(1);
    expect(second?.rowsWritten).toBe(1);
    expect(second?.nodes?.every((n) => n.shardsRecomputed === 0)).toBe(true);
    expect(second?.nodes?.map((n) => n.groupsRecomputed).sort()).toEqual([0, 1]);
    expect(await oracleDiff([hourly])).toEqual([]);

    // Nothing written since: nothing recomputed.
    const [third] = await refreshIncremental([hourly]);
    expect(third?.groupsRecomputed).toBe(0);
  });

  it('equals the oracle for the hourly and daily rollups after random inserts, late rows, updates across buckets and workspaces, and deletes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 3, maxLength: 14 }),
        fc.array(opArb, { minLength: 1, maxLength: 12 }),
        fc.array(opArb, { minLength: 1, maxLength: 12 }),
        async (first, second, third) => {
          await resetData(db.pool);
          for (const op of first) await apply(op);
          await refreshIncremental();
          expect(await oracleDiff()).toEqual([]);
          for (const op of second) await apply(op);
          const results = await refreshIncremental();
          // Incremental, per node: no shard recomputed whole after the first run.
          expect(results.every((r) => r.mode === 'incremental')).toBe(true);
          expect(results.flatMap((r) => r.nodes ?? []).every((n) => n.shardsRecomputed === 0)).toBe(true);
          expect(await oracleDiff()).toEqual([]);
          for (const op of third) await apply(op);
          await refreshIncremental();
          expect(await oracleDiff()).toEqual([]);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('stays exact with writers running during the refreshes', async () => {
    await resetData(db.pool);
    for (const op of fc.sample(opArb, { numRuns: 30, seed: 13 })) await apply(op);
    await refreshIncremental();
    const writes = fc.sample(opArb, { numRuns: 160, seed: 42 });
    let writing = true;
    const writer = (async () => {
      for (const op of writes) await apply(op);
      writing = false;
    })();
    let refreshes = 0;
    while (writing) {
      await refreshIncremental();
      refreshes += 1;
    }
    await writer;
    // Refreshes overlapped the writes; one more folds in what the last of them did not see.
    expect(refreshes).toBeGreaterThan(1);
    await refreshIncremental();
    expect(await oracleDiff()).toEqual([]);
  });
});

describe('shard moves between refreshes', () => {
  it('recomputes the moved shards on their new node and stays exact', async () => {
    await resetData(db.pool);
    for (const ws of [1, 2, 3, 4, 5, 6]) await apply(insert(ws, ws * 60, 4));
    await refreshIncremental([hourly]);
    expect(await oracleDiff([hourly])).toEqual([]);

    // Writes on the shard of workspace 1 that its node's refresh has not folded in yet: the deletes
    // are logged in that node's change log, which does not move with the shard.
    await db.pool.query(
      'DELETE FROM public.execution_logs WHERE workspace_id = 1 AND id IN (SELECT min(id) FROM public.execution_logs WHERE workspace_id = 1)',
    );
    await db.pool.query(
      `UPDATE public.execution_logs SET started_at = $1 WHERE workspace_id = 1 AND id = (SELECT max(id) FROM public.execution_logs WHERE workspace_id = 1)`,
      [new Date(BASE + 3 * 86_400_000).toISOString()],
    );
    const { rows: shard } = await db.pool.query<{ shardid: string; host: string; port: number }>(
      `SELECT s.shardid::text AS shardid, n.nodename AS host, n.nodeport AS port
       FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
       WHERE s.logicalrelid = 'public.execution_logs'::regclass
         AND s.shardid = get_shard_id_for_distribution_column('public.execution_logs', 1)`,
    );
    const from = shard[0];
    if (from === undefined) throw new Error('no shard for workspace 1');
    const toPort = db.ports.workerPorts.find((p) => p !== from.port);
    if (toPort === undefined) throw new Error('one worker only');
    // The moved rows keep their stamps, ids of the node they leave. The node they go to is made to
    // have used more ids, so its snapshots see those stamps as old (the other way round is the next test).
    await advanceXidsPast(toPort, await nextXid(from.port));
    await db.pool.query(
      `SELECT citus_move_shard_placement($1::bigint, $2, $3, '127.0.0.1', $4, shard_transfer_mode => 'block_writes')`,
      [from.shardid, from.host, from.port, toPort],
    );
    await apply(insert(1, 2000));

    const [after] = await refreshIncremental([hourly]);
    expect(after?.mode).toBe('incremental');
    const byNode = new Map((after?.nodes ?? []).map((n) => [n.node, n]));
    // The node that received the shard recomputes it whole (its rows carry the other node's stamps);
    // the node it left has nothing to recompute whole.
    expect(byNode.get(`127.0.0.1:${toPort}`)?.shardsRecomputed).toBe(1);
    expect(byNode.get(`127.0.0.1:${from.port}`)?.shardsRecomputed).toBe(0);
    expect(await oracleDiff([hourly])).toEqual([]);

    // And from then on the moved shard is incremental on its new node.
    await apply(insert(1, 2500));
    const [next] = await refreshIncremental([hourly]);
    expect(next?.nodes?.every((n) => n.shardsRecomputed === 0)).toBe(true);
    // The change's group only. (A CI run counted 4 when the node it went to had used fewer ids than
    // the node it left: the moved rows' stamps looked new to its snapshots, see the next test.)
    expect(next?.groupsRecomputed, JSON.stringify(next?.nodes)).toBe(1);
    expect(await oracleDiff([hourly])).toEqual([]);

    // Moved away and back with no refresh between (a move keeps the placement id): the node it
    // came back to must not take its old state for the shard. The delete made meanwhile is logged
    // on the other node.
    const move = async (fromPort: number, toNode: number): Promise<void> => {
      await db.pool.query(
        `SELECT citus_move_shard_placement($1::bigint, '127.0.0.1', $2, '127.0.0.1', $3, shard_transfer_mode => 'block_writes')`,
        [from.shardid, fromPort, toNode],
      );
    };
    await move(toPort, from.port);
    await db.pool.query(
      'DELETE FROM public.execution_logs WHERE workspace_id = 1 AND id IN (SELECT min(id) FROM public.execution_logs WHERE workspace_id = 1)',
    );
    await move(from.port, toPort);
    const [back] = await refreshIncremental([hourly]);
    expect(
      new Map((back?.nodes ?? []).map((n) => [n.node, n])).get(`127.0.0.1:${toPort}`)?.shardsRecomputed,
    ).toBe(1);
    expect(await oracleDiff([hourly])).toEqual([]);
  });

  it("a shard moved to a node that has used fewer transaction ids: its rows' groups are recomputed again until the node's ids pass their stamps, and stay exact", async () => {
    await resetData(db.pool);
    const from = await shardOf(1);
    const toPort = db.ports.workerPorts.find((p) => p !== from.port);
    if (toPort === undefined) throw new Error('one worker only');
    // Workspace 1's rows are written on a node that has used 300 more ids than the one they move to.
    await advanceXidsPast(from.port, (await nextXid(toPort)) + 300n);
    for (const ws of [1, 2, 3, 4, 5, 6]) await apply(insert(ws, ws * 40, 5));
    await refreshIncremental([hourly]);
    const leftAt = await nextXid(from.port);
    await db.pool.query(
      `SELECT citus_move_shard_placement($1::bigint, '127.0.0.1', $2, '127.0.0.1', $3, shard_transfer_mode => 'block_writes')`,
      [from.shardid, from.port, toPort],
    );
    const [moved] = await refreshIncremental([hourly]);
    expect(moved?.nodes?.find((n) => n.node === `127.0.0.1:${toPort}`)?.shardsRecomputed).toBe(1);
    expect(await oracleDiff([hourly])).toEqual([]);

    // One new row in a new hour of workspace 1: its group, and again every group of the moved rows
    // (their stamps are past the node's snapshot), of each workspace in the moved shard.
    const { rows: stored } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM analytics.execution_metrics_hourly
       WHERE get_shard_id_for_distribution_column('public.execution_logs', workspace_id) = $1::bigint`,
      [from.shardid],
    );
    const movedGroups = stored[0]?.n ?? 0;
    expect(movedGroups).toBeGreaterThan(1);
    await apply(insert(1, 3000));
    const [again] = await refreshIncremental([hourly]);
    expect(again?.nodes?.every((n) => n.shardsRecomputed === 0)).toBe(true);
    expect(again?.groupsRecomputed, JSON.stringify(again?.nodes)).toBe(movedGroups + 1);
    expect(again?.rowsWritten).toBe(1);
    expect(await oracleDiff([hourly])).toEqual([]);

    // Once the node's ids are past the stamps (and a refresh took a snapshot there), a change costs its
    // own group only.
    await advanceXidsPast(toPort, leftAt);
    await refreshIncremental([hourly]);
    await apply(insert(1, 3200));
    const [caught] = await refreshIncremental([hourly]);
    expect(caught?.groupsRecomputed, JSON.stringify(caught?.nodes)).toBe(1);
    expect(await oracleDiff([hourly])).toEqual([]);
  });

  it('after citus_rebalance_start moved shards: recomputes them on their new node and stays exact', async () => {
    await resetData(db.pool);
    for (const ws of [1, 2, 3, 4, 5, 6]) await apply(insert(ws, ws * 30, 3));
    // Every shard on the first worker, so that the rebalancer has something to move.
    const [first, second] = db.ports.workerPorts as [number, number];
    const { rows: onSecond } = await db.pool.query<{ shardid: string }>(
      `SELECT s.shardid::text AS shardid FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
       JOIN pg_dist_node n USING (groupid)
       WHERE s.logicalrelid = 'public.execution_logs'::regclass AND n.nodeport = $1`,
      [second],
    );
    for (const r of onSecond)
      await db.pool.query(
        `SELECT citus_move_shard_placement($1::bigint, '127.0.0.1', $2, '127.0.0.1', $3, shard_transfer_mode => 'block_writes')`,
        [r.shardid, second, first],
      );
    const [before] = await refreshIncremental([hourly]);
    expect(before?.nodes?.map((n) => n.node)).toEqual([`127.0.0.1:${first}`]);
    expect(await oracleDiff([hourly])).toEqual([]);

    // Unfolded writes, then the rebalance.
    await apply({ op: 'delete', table: 'execution_logs', pick: 2 });
    await apply({
      op: 'moveTime',
      table: 'execution_logs',
      pick: 5,
      at: new Date(BASE + 4 * 86_400_000).toISOString(),
    });
    await db.pool.query("SELECT citus_rebalance_start(shard_transfer_mode => 'block_writes')");
    await db.pool.query('SELECT citus_rebalance_wait()');
    await apply(insert(2, 3000));
    const [after] = await refreshIncremental([hourly]);
    const moved = after?.nodes?.find((n) => n.node === `127.0.0.1:${second}`);
    expect(moved?.shards).toBeGreaterThan(0);
    expect(moved?.shardsRecomputed).toBe(moved?.shards);
    expect(after?.nodes?.find((n) => n.node === `127.0.0.1:${first}`)?.shardsRecomputed).toBe(0);
    expect(await oracleDiff([hourly])).toEqual([]);
  });

  it('a node without its change log (added after migrate) takes deletes and updates, and stays exact', async () => {
    await resetData(db.pool);
    for (const ws of [1, 2, 3, 4, 5, 6]) await apply(insert(ws, ws * 50, 3));
    await refreshIncremental([hourly]);
    // As on a worker added after aggjobs migrate: the trigger functions are there, the log is not.
    const [worker] = db.ports.workerPorts as [number];
    await queryWorker(db, worker, 'DROP TABLE aggjobs_node.change_log');
    for (const ws of [1, 2, 3, 4, 5, 6]) {
      await db.pool.query(
        'DELETE FROM public.execution_logs WHERE workspace_id = $1 AND id = (SELECT min(id) FROM public.execution_logs WHERE workspace_id = $1)',
        [ws],
      );
      await db.pool.query(
        `UPDATE public.execution_logs SET started_at = $2 WHERE workspace_id = $1
           AND id = (SELECT max(id) FROM public.execution_logs WHERE workspace_id = $1)`,
        [ws, new Date(BASE + 2 * 86_400_000 + ws * 3_600_000).toISOString()],
      );
    }
    await refreshIncremental([hourly]);
    expect(await oracleDiff([hourly])).toEqual([]);
  });
});
