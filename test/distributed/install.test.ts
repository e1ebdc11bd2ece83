import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseSettings } from '../../src/config/index.ts';
import { migrate } from '../../src/db/index.ts';
import {
  builtinRollups,
  installRollups,
  prepareDatabase,
  type RollupDefinition,
} from '../../src/rollups/index.ts';
import { viewRollups } from '../../src/rollups/citus-view-rollups.ts';
import { createCitusTestDatabase, type CitusTestDatabase } from './citus-database.ts';
import { cliEntry } from '../support/cli-command.ts';

// `aggjobs migrate` against a Citus coordinator: what it distributes, what it adopts, what it refuses.

const run = promisify(execFile);
const SOURCES = ['public.execution_logs', 'public.user_activity_events', 'public.credit_transactions'];
// With the rollups the materialized views are read from on Citus (src/rollups/citus-views.ts).
const ROLLUPS = [...builtinRollups, ...viewRollups].map((d) => `analytics.${d.name}`);

async function cli(args: string[], url: string): Promise<{ stdout: string; stderr: string; code: number }> {
  return run(process.execPath, [cliEntry, ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', DATABASE_URL: url },
  })
    .then((r) => ({ ...r, code: 0 }))
    .catch((e: { stdout: string; stderr: string; code: number }) => ({
      stdout: e.stdout,
      stderr: e.stderr,
      code: e.code,
    }));
}

interface Placement {
  table: string;
  method: string;
  column: string | null;
  colocation: number;
}

async function placements(db: CitusTestDatabase): Promise<Placement[]> {
  const { rows } = await db.pool.query<Placement>(
    `SELECT logicalrelid::regclass::text AS table, partmethod::text AS method,
            column_to_column_name(logicalrelid, partkey) AS column, colocationid AS colocation
     FROM pg_dist_partition ORDER BY 1`,
  );
  // regclass prints public tables without their schema.
  return rows.map((r) => ({ ...r, table: r.table.includes('.') ? r.table : `public.${r.table}` }));
}

let fresh: CitusTestDatabase;
let adopting: CitusTestDatabase;
let otherColumn: CitusTestDatabase;
let notColocated: CitusTestDatabase;
beforeAll(async () => {
  // One after the other: registering nodes syncs Citus metadata to the workers, which concurrent
  // registrations for several databases of one cluster do not survive.
  fresh = await createCitusTestDatabase();
  adopting = await createCitusTestDatabase();
  otherColumn = await createCitusTestDatabase();
  notColocated = await createCitusTestDatabase();
});

describe('aggjobs migrate on a Citus coordinator', () => {
  it('distributes the sources and every rollup by workspace_id in one co-location group; the job tables stay local', async () => {
    const first = await cli(['migrate'], fresh.url);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const placed = await placements(fresh);
    expect(placed.map((p) => p.table).sort()).toEqual([...ROLLUPS, ...SOURCES].sort());
    expect(new Set(placed.map((p) => `${p.method} ${p.column ?? ''}`))).toEqual(new Set(['h workspace_id']));
    expect(new Set(placed.map((p) => p.colocation)).size).toBe(1);
    // citus_tables agrees, and nothing of aggjobs.* (runs, ledger, rollup state) is distributed.
    const { rows } = await fresh.pool.query<{ n: number; aggjobs: number }>(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE table_name::text LIKE 'aggjobs.%')::int AS aggjobs
       FROM citus_tables WHERE distribution_column = 'workspace_id' AND citus_table_type = 'distributed'`,
    );
    expect(rows[0]).toEqual({ n: SOURCES.length + ROLLUPS.length, aggjobs: 0 });
    // The sources' `id` keys were widened to include the distribution column.
    const { rows: keys } = await fresh.pool.query<{ key: string }>(
      `SELECT pg_get_constraintdef(oid) AS key FROM pg_constraint
       WHERE conrelid = 'public.execution_logs'::regclass AND contype = 'p'`,
    );
    expect(keys[0]?.key).toBe('PRIMARY KEY (workspace_id, id)');
    // A second migrate adopts what the first distributed.
    const second = await cli(['migrate'], fresh.url);
    expect(second.code).toBe(0);
    expect(await placements(fresh)).toEqual(placed);
  });

  it('adopts sources the application already distributed by workspace_id and co-locates the rest with them', async () => {
    await migrate(adopting.pool);
    await adopting.pool.query(
      `ALTER TABLE public.credit_transactions DROP CONSTRAINT credit_transactions_pkey,
         ADD PRIMARY KEY (workspace_id, id);
       SELECT create_distributed_table('public.credit_transactions', 'workspace_id', shard_count => 6)`,
    );
    // Change capture left by a single-server install of this database: dropped before distributing.
    await adopting.pool.query(
      `ALTER TABLE public.execution_logs ADD COLUMN aggjobs_xid xid8 DEFAULT pg_current_xact_id();
       CREATE TRIGGER aggjobs_stamp_xid BEFORE UPDATE ON public.execution_logs
         FOR EACH ROW EXECUTE FUNCTION aggjobs.stamp_row_xid()`,
    );
    const before = (await placements(adopting))[0];
    await prepareDatabase(adopting.pool, parseSettings({}));
    const placed = await placements(adopting);
    expect(placed).toHaveLength(SOURCES.length + ROLLUPS.length);
    expect(new Set(placed.map((p) => p.colocation))).toEqual(new Set([before?.colocation]));
    const { rows } = await adopting.pool.query<{ shards: number }>(
      `SELECT count(*)::int AS shards FROM pg_dist_shard WHERE logicalrelid = 'analytics.execution_metrics_hourly'::regclass`,
    );
    expect(rows[0]?.shards).toBe(6);
    // The single-server triggers (and the stamp's column default, which Citus would evaluate on the
    // coordinator) are replaced by the per-node ones (src/rollups/citus-capture.ts).
    const { rows: capture } = await adopting.pool.query<{ triggers: string[]; defaults: number }>(
      `SELECT array(SELECT t.tgname || ' ' || p.pronamespace::regnamespace || '.' || p.proname
                    FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                    WHERE t.tgrelid = 'public.execution_logs'::regclass AND t.tgname LIKE 'aggjobs%'
                    ORDER BY 1) AS triggers,
              (SELECT count(*)::int FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
               WHERE d.adrelid = 'public.execution_logs'::regclass AND a.attname = 'aggjobs_xid') AS defaults`,
    );
    expect(capture[0]).toEqual({
      triggers: [
        'aggjobs_log_deletes aggjobs_node.log_old_groups',
        'aggjobs_log_moves aggjobs_node.log_old_groups',
        'aggjobs_log_truncate aggjobs_node.log_truncate',
        'aggjobs_stamp_xid aggjobs_node.stamp_row_xid',
      ],
      defaults: 0,
    });
  });

  it('refuses a source distributed by another column, naming the table and the column', async () => {
    await migrate(otherColumn.pool);
    await otherColumn.pool.query(
      `ALTER TABLE public.user_activity_events DROP CONSTRAINT user_activity_events_pkey,
         ADD PRIMARY KEY (user_id, id);
       SELECT create_distributed_table('public.user_activity_events', 'user_id')`,
    );
    await expect(prepareDatabase(otherColumn.pool, parseSettings({}))).rejects.toThrow(
      /public\.user_activity_events is distributed by user_id on Citus; aggjobs needs it distributed by workspace_id/,
    );
    // Nothing was distributed by the refused install (one transaction).
    expect((await placements(otherColumn)).map((p) => p.table)).toEqual(['public.user_activity_events']);
  });

  it('refuses a source distributed by workspace_id in another co-location group', async () => {
    await migrate(notColocated.pool);
    await notColocated.pool.query(
      `ALTER TABLE public.execution_logs DROP CONSTRAINT execution_logs_pkey, ADD PRIMARY KEY (workspace_id, id);
       ALTER TABLE public.credit_transactions DROP CONSTRAINT credit_transactions_pkey, ADD PRIMARY KEY (workspace_id, id);
       SELECT create_distributed_table('public.execution_logs', 'workspace_id');
       SELECT create_distributed_table('public.credit_transactions', 'workspace_id', colocate_with => 'none')`,
    );
    await expect(prepareDatabase(notColocated.pool, parseSettings({}))).rejects.toThrow(
      /public\.credit_transactions is distributed by workspace_id but not co-located with public\.execution_logs/,
    );
  });

  it('refuses a user-defined rollup whose dimensions do not include workspace_id, saying why', async () => {
    const byStatus: RollupDefinition = {
      name: 'executions_by_status_hourly',
      source: 'public.execution_logs',
      timeColumn: 'started_at',
      grain: 'hour',
      dimensions: [{ column: 'status', type: 'text' }],
      measures: [{ name: 'executions', type: 'bigint', sql: 'count(*)' }],
    };
    await expect(installRollups(fresh.pool, [...builtinRollups, byStatus])).rejects.toThrow(
      /rollup "executions_by_status_hourly" cannot be installed on Citus: its dimensions \(status\) do not include workspace_id.*percentiles, distinct counts/,
    );
    const { rows } = await fresh.pool.query<{ exists: boolean }>(
      `SELECT to_regclass('analytics.executions_by_status_hourly') IS NOT NULL AS exists`,
    );
    expect(rows[0]?.exists).toBe(false);
  });
});
