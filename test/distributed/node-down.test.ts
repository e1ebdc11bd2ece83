import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSettings } from '../../src/config/index.ts';
import { createPool, type Pool } from '../../src/db/index.ts';
import {
  builtinRollups,
  prepareDatabase,
  refreshRollup,
  type RollupDefinition,
} from '../../src/rollups/index.ts';
import {
  citusMissing,
  createCitusDatabase,
  startCitusCluster,
  type CitusCluster,
} from '../support/citus-cluster.ts';
import { compareWithOracle } from '../support/oracle.ts';
import { apply, BASE, ZONE, type Op } from './citus-ops.ts';

// A worker node that is down during an incremental refresh: the refresh fails naming the node and
// writes nothing (on the node that is up either); once the node is back the next run catches up.
// On a cluster of its own, since it stops one of its workers.

const hourly = builtinRollups.find((d) => d.name === 'execution_metrics_hourly') as RollupDefinition;
let cluster: CitusCluster;
let pool: Pool;

beforeAll(async () => {
  const missing = await citusMissing();
  if (missing !== undefined) throw new Error(missing);
  cluster = await startCitusCluster();
  const url = await createCitusDatabase(
    { coordinatorPort: cluster.coordinator.port, workerPorts: cluster.workers.map((w) => w.port) },
    'aggjobs_node_down',
  );
  pool = createPool({ connectionString: url, max: 4, applicationName: 'aggjobs citus test' });
  await prepareDatabase(pool, parseSettings({}));
});

afterAll(async () => {
  await pool?.end();
  await cluster?.stop();
});

const insert = (ws: number, minutes: number): Op => ({
  op: 'insert',
  table: 'execution_logs',
  ws,
  user: 2,
  at: new Date(BASE + minutes * 60_000).toISOString(),
  status: 'failed',
  n: 2,
});

/** What a node holds of the rollup: its state row and the rows of its rollup shards. */
async function nodeView(port: number): Promise<{ state: unknown; rows: number }> {
  const client = new pg.Client({
    connectionString: cluster.url({ role: 'worker', port, dataDir: '' }, 'aggjobs_node_down'),
  });
  await client.connect();
  try {
    const { rows: state } = await client.query(
      `SELECT snapshot::text, horizon::text, placements::text FROM aggjobs_node.rollup_state WHERE rollup = $1`,
      [hourly.name],
    );
    const { rows: shards } = await client.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'analytics' AND c.relkind = 'r' AND c.relname ~ ('^' || $1 || '_[0-9]+$')`,
      [hourly.name],
    );
    let rows = 0;
    for (const s of shards) {
      const { rows: counted } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM analytics."${s.name}"`,
      );
      rows += counted[0]?.n ?? 0;
    }
    return { state: state[0], rows };
  } finally {
    await client.end();
  }
}

describe('a worker node that is down', () => {
  it('fails the incremental refresh naming the node, writes nothing, and the next run catches up', async () => {
    for (const ws of [1, 2, 3, 4, 5, 6]) await apply(pool, insert(ws, ws * 45));
    await refreshRollup(pool, hourly, { timezone: ZONE, mode: { kind: 'incremental' } });
    expect(await compareWithOracle(pool, ZONE, { tables: [hourly.name] })).toEqual([]);

    // New rows on both workers, then one worker goes down.
    for (const ws of [1, 2, 3, 4, 5, 6]) await apply(pool, insert(ws, 3000 + ws * 45));
    const [up, down] = cluster.workers as [(typeof cluster.workers)[0], (typeof cluster.workers)[0]];
    const before = await nodeView(up.port);
    const { rows: stateBefore } = await pool.query(
      'SELECT last_refresh_at, last_result FROM aggjobs.rollup_state WHERE rollup = $1',
      [hourly.name],
    );
    await cluster.halt(down);
    try {
      const refused = refreshRollup(pool, hourly, { timezone: ZONE, mode: { kind: 'incremental' } });
      await expect(refused).rejects.toThrow(
        new RegExp(`Citus worker node 127\\.0\\.0\\.1:${down.port} is unreachable .*nothing was written`),
      );
      // Nothing written: the node that is up kept its state and its rows, the coordinator its record.
      expect(await nodeView(up.port)).toEqual(before);
      const { rows: stateAfter } = await pool.query(
        'SELECT last_refresh_at, last_result FROM aggjobs.rollup_state WHERE rollup = $1',
        [hourly.name],
      );
      expect(stateAfter).toEqual(stateBefore);
    } finally {
      await cluster.resume(down);
    }
    const caughtUp = await refreshRollup(pool, hourly, { timezone: ZONE, mode: { kind: 'incremental' } });
    expect(caughtUp.mode).toBe('incremental');
    expect(caughtUp.groupsRecomputed).toBe(6);
    expect(await compareWithOracle(pool, ZONE, { tables: [hourly.name] })).toEqual([]);
  });
});
