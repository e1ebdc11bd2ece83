import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSettings } from '../../src/config/index.ts';
import { createPool, type Pool } from '../../src/db/index.ts';
import {
  builtinRollups,
  materializedViewNames,
  prepareDatabase,
  refreshMaterializedViews,
  refreshRollup,
  type RollupDefinition,
} from '../../src/rollups/index.ts';
import { materializedViewSql } from '../../src/rollups/materialized-views.ts';
import {
  citusMissing,
  createCitusDatabase,
  startCitusCluster,
  type CitusCluster,
} from '../support/citus-cluster.ts';
import { compareWithOracle } from '../support/oracle.ts';
import { apply, BASE, ZONE, type Op } from './citus-ops.ts';
import { cliEntry } from '../support/cli-command.ts';

// A worker node that is down (stopped with pg_ctl) during an incremental refresh: the refresh fails
// naming the node and writes nothing (on the node that is up either); once the node is back the next
// run catches up. The health check meanwhile answers unhealthy, naming the node. On a cluster of its
// own, since it stops one of its workers.

const hourly = builtinRollups.find((d) => d.name === 'execution_metrics_hourly') as RollupDefinition;
let cluster: CitusCluster;
let pool: Pool;
let url: string;

beforeAll(async () => {
  const missing = await citusMissing();
  if (missing !== undefined) throw new Error(missing);
  cluster = await startCitusCluster();
  url = await createCitusDatabase(
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

  it('a stopped worker: the health check is unhealthy naming host:port, the views refresh fails naming it and writes nothing, and the next runs catch up', async () => {
    const refreshAll = async (): Promise<void> => {
      for (const def of builtinRollups)
        await refreshRollup(pool, def, { timezone: ZONE, mode: { kind: 'incremental' } });
      await refreshMaterializedViews(pool, { timezone: VIEW_ZONE });
    };
    const recent = (ws: number, minutes: number): Op => ({
      op: 'insert',
      table: 'execution_logs',
      ws,
      user: 2,
      at: new Date(Date.now() - minutes * 60_000).toISOString(),
      status: 'success',
      n: 2,
    });
    for (const ws of [1, 2, 3, 4, 5, 6]) await apply(pool, recent(ws, 30 + ws));
    await refreshAll();
    const before = await health();
    expect(before.checks.data_freshness.status).toBe('healthy');
    expect(before.checks.change_capture_lag.status).toBe('healthy');
    expect(await viewDifferences()).toEqual([]);

    for (const ws of [1, 2, 3, 4, 5, 6]) await apply(pool, recent(ws, 10 + ws));
    const [, down] = cluster.workers as [(typeof cluster.workers)[0], (typeof cluster.workers)[0]];
    const recorded = async (): Promise<unknown> =>
      (
        await pool.query(
          `SELECT (SELECT json_agg(r ORDER BY view_name) FROM aggjobs.view_refreshes r) AS views,
                  (SELECT json_agg(s ORDER BY rollup) FROM aggjobs.rollup_state s) AS rollups,
                  (SELECT json_agg(h ORDER BY hour) FROM analytics.mv_hourly_execution_stats h) AS hourly`,
        )
      ).rows[0];
    const stateBefore = await recorded();
    await cluster.halt(down);
    try {
      const report = await health();
      const node = `Citus worker node 127.0.0.1:${down.port} is unreachable`;
      expect(report.status).toBe('unhealthy');
      expect(report.checks.data_freshness.status).toBe('unhealthy');
      expect(report.checks.data_freshness.detail).toContain(node);
      expect(report.checks.change_capture_lag.status).toBe('unhealthy');
      expect(report.checks.change_capture_lag.detail).toContain(node);

      await expect(refreshMaterializedViews(pool, { timezone: VIEW_ZONE })).rejects.toThrow(
        new RegExp(`${node.replaceAll('.', '\\.')} .*nothing was written`),
      );
      await expect(
        refreshRollup(pool, hourly, { timezone: ZONE, mode: { kind: 'incremental' } }),
      ).rejects.toThrow(new RegExp(node.replaceAll('.', '\\.')));
      expect(await recorded()).toEqual(stateBefore);
    } finally {
      await cluster.resume(down);
    }
    await refreshAll();
    const after = await health();
    expect(after.checks.data_freshness.status).toBe('healthy');
    expect(after.checks.change_capture_lag.status).toBe('healthy');
    expect(await compareWithOracle(pool, ZONE)).toEqual([]);
    expect(await viewDifferences()).toEqual([]);
  });
});

const run = promisify(execFile);
/** The views' zone: migrate's (parseSettings({})), as the refresh_materialized_views task runs them. */
const VIEW_ZONE = parseSettings({}).analyticsTimezone;

interface Check {
  status: string;
  detail: string;
}

/** `aggjobs run health_check --eager` against the cluster, as an operator runs it. */
async function health(): Promise<{
  status: string;
  checks: { data_freshness: Check; change_capture_lag: Check };
}> {
  const { stdout } = await run(process.execPath, [cliEntry, 'run', 'health_check', '--eager'], {
    env: { ...process.env, LOG_LEVEL: 'warn', DATABASE_URL: url, ANALYTICS_TIMEZONE: ZONE },
  });
  return (
    JSON.parse(stdout) as {
      result: { status: string; checks: { data_freshness: Check; change_capture_lag: Check } };
    }
  ).result;
}

/** Rows that differ between each view and its single-server definition over the source rows. */
async function viewDifferences(): Promise<Array<{ view: string; differing: number }>> {
  const out = [];
  for (const view of materializedViewNames) {
    const q = materializedViewSql(view, VIEW_ZONE);
    const { rows } = await pool.query<{ differing: number }>(
      `SELECT count(*)::int AS differing FROM (
         (SELECT * FROM analytics.${view} EXCEPT ALL (${q}))
         UNION ALL
         ((${q}) EXCEPT ALL SELECT * FROM analytics.${view})) d`,
    );
    if (rows[0]?.differing !== 0) out.push({ view, differing: rows[0]?.differing ?? -1 });
  }
  return out;
}
