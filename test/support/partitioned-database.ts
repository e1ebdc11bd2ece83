import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, inject } from 'vitest';
import { parseSettings } from '../../src/config/index.ts';
import { createPool } from '../../src/db/index.ts';
import { prepareDatabase } from '../../src/rollups/index.ts';
import type { TestDatabase } from './database.ts';

/** The three source tables of the built-in rollups and their time columns. */
export const partitionedSources = [
  { table: 'execution_logs', timeColumn: 'started_at' },
  { table: 'user_activity_events', timeColumn: 'occurred_at' },
  { table: 'credit_transactions', timeColumn: 'created_at' },
] as const;

const day = 86_400_000;
const stamp = (t: number): string => new Date(t).toISOString().slice(0, 10).replaceAll('-', '');

/**
 * The source tables as an application would create them, range-partitioned by their time column
 * with an `(id, time)` primary key, written out by hand (independently of aggjobs' own DDL): one
 * partition per UTC day over [from, to), plus the ones `edges` asks for: a `MINVALUE` partition
 * below `from` and a `MAXVALUE` one from `to` (so that a row moved far away still has one).
 */
export function partitionedSourcesSql(
  range: { from: string; to: string },
  edges: { below?: boolean; above?: boolean } = {},
): string {
  const from = Date.parse(`${range.from}T00:00:00Z`);
  const to = Date.parse(`${range.to}T00:00:00Z`);
  const columns: Record<string, string> = {
    execution_logs: `id bigserial, workspace_id bigint NOT NULL, user_id bigint NOT NULL, workflow_id bigint NOT NULL,
      status text NOT NULL CHECK (status IN ('running', 'success', 'failed', 'timeout', 'cancelled')),
      started_at timestamptz NOT NULL, completed_at timestamptz, duration_ms integer,
      credits_used numeric(14,4) NOT NULL DEFAULT 0, error_type text, PRIMARY KEY (id, started_at)`,
    user_activity_events: `id bigserial, workspace_id bigint NOT NULL, user_id bigint NOT NULL, event_type text NOT NULL,
      occurred_at timestamptz NOT NULL, session_id text, properties jsonb, PRIMARY KEY (id, occurred_at)`,
    credit_transactions: `id bigserial, workspace_id bigint NOT NULL, user_id bigint, execution_id bigint,
      source text NOT NULL, credits numeric(14,4) NOT NULL, created_at timestamptz NOT NULL, PRIMARY KEY (id, created_at)`,
  };
  const statements: string[] = [];
  for (const { table, timeColumn } of partitionedSources) {
    statements.push(`CREATE TABLE public.${table} (${columns[table]}) PARTITION BY RANGE (${timeColumn})`);
    if (edges.below === true)
      statements.push(
        `CREATE TABLE public.${table}_older PARTITION OF public.${table} FOR VALUES FROM (MINVALUE) TO ('${new Date(from).toISOString()}')`,
      );
    for (let t = from; t < to; t += day)
      statements.push(
        `CREATE TABLE public.${table}_p${stamp(t)} PARTITION OF public.${table}
           FOR VALUES FROM ('${new Date(t).toISOString()}') TO ('${new Date(t + day).toISOString()}')`,
      );
    if (edges.above === true)
      statements.push(
        `CREATE TABLE public.${table}_newer PARTITION OF public.${table} FOR VALUES FROM ('${new Date(to).toISOString()}') TO (MAXVALUE)`,
      );
  }
  return statements.join(';\n');
}

/**
 * A new database whose source tables the "application" created partitioned (`sql`, before
 * aggjobs; may be empty), then `aggjobs migrate` (prepareDatabase) on it with the settings of `env`,
 * as a user would run it (`migrate: false`: not run). Dropped after the file's tests.
 */
export async function createPartitionedTestDatabase(
  sql: string,
  options: { env?: Record<string, string>; migrate?: boolean } = {},
): Promise<TestDatabase> {
  const adminUrl = inject('pgAdminUrl');
  const template = inject('pgTemplate');
  const name = `aggjobs_t_${template.slice('aggjobs_tpl_'.length)}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const parsed = new URL(adminUrl);
  parsed.pathname = `/${name}`;
  const url = parsed.toString();
  const pool = createPool({ connectionString: url, max: 8, applicationName: 'aggjobs test' });
  afterAll(async () => {
    await pool.end();
    const drop = new pg.Client({ connectionString: adminUrl });
    await drop.connect();
    await drop.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await drop.end();
  });
  if (sql !== '') await pool.query(sql);
  if (options.migrate !== false) await prepareDatabase(pool, parseSettings(options.env ?? {}));
  return { url, pool, name };
}
