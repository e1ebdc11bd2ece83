import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../../src/db/index.ts';
import {
  builtinRollups,
  prepareDatabase,
  rebuildRollup,
  refreshRollup,
  RollupRebuildRequiredError,
} from '../../src/rollups/index.ts';
import { assertRollupsMatchOracle } from '../support/oracle.ts';
import {
  findInstalledServer,
  startTemporaryCluster,
  type TemporaryCluster,
} from '../support/postgres-server.ts';
import { refreshAll } from '../support/rollup-helpers.ts';

/**
 * Sources written by logical replication: an analytics database subscribed to the product
 * database's three tables, on a throwaway cluster with wal_level = logical. The apply worker runs
 * with session_replication_role = replica, where aggjobs' ordinary triggers do not fire and
 * statement triggers never do; migration 000014's row triggers, enabled for replica sessions, stamp
 * and log what it applies. Random inserts, updates within and across groups, key changes, upserts
 * that move a row and deletes on the product side; after each round, once the subscriber has caught
 * up, the rollups equal the plain GROUP BY.
 */
const ZONE = 'America/New_York';
let cluster: TemporaryCluster | undefined;
let product: Pool;
let analytics: Pool;

beforeAll(async () => {
  const installed = findInstalledServer();
  if (installed === undefined)
    throw new Error(
      'this test needs an installed PostgreSQL (initdb, pg_ctl) to start a cluster with wal_level = logical',
    );
  cluster = await startTemporaryCluster(installed, ['wal_level = logical']);
  if (cluster === undefined)
    throw new Error('no postgres user to run a throwaway PostgreSQL cluster as root');
  const admin = createPool({ connectionString: cluster.url, max: 1 });
  await admin.query('CREATE DATABASE product');
  await admin.query('CREATE DATABASE analytics');
  await admin.end();
  const urlOf = (database: string): string => {
    const url = new URL(cluster?.url ?? '');
    url.pathname = `/${database}`;
    return url.toString();
  };
  product = createPool({ connectionString: urlOf('product'), max: 2 });
  analytics = createPool({ connectionString: urlOf('analytics'), max: 4 });
  // The product database: the application's tables as aggjobs' first migration writes them, no aggjobs.
  await product.query(readFileSync('migrations/000001_source_tables.sql', 'utf8'));
  await product.query(
    'CREATE PUBLICATION analytics FOR TABLE public.execution_logs, public.user_activity_events, public.credit_transactions',
  );
  await product.query(`SELECT pg_create_logical_replication_slot('analytics', 'pgoutput')`);
  await prepareDatabase(analytics, { analyticsTimezone: ZONE });
  const target = new URL(urlOf('product'));
  // In one cluster the slot is made first (CREATE SUBSCRIPTION would wait for its own transaction).
  await analytics.query(
    `CREATE SUBSCRIPTION analytics
     CONNECTION 'host=${target.hostname} port=${target.port} dbname=product user=postgres'
     PUBLICATION analytics WITH (create_slot = false, slot_name = 'analytics')`,
  );
}, 120_000);

afterAll(async () => {
  await analytics?.query('ALTER SUBSCRIPTION analytics DISABLE').catch(() => undefined);
  await analytics?.end();
  await product?.end();
  await cluster?.stop();
});

const tables = ['execution_logs', 'user_activity_events', 'credit_transactions'];

/** The three tables' rows (without aggjobs' stamp), as one text per table. */
async function contents(pool: Pool): Promise<string[]> {
  const out: string[] = [];
  for (const t of tables) {
    const { rows } = await pool.query<{ h: string | null }>(
      `SELECT md5(string_agg((to_jsonb(s) - 'aggjobs_xid')::text, ',' ORDER BY s.id)) AS h FROM public.${t} s`,
    );
    out.push(rows[0]?.h ?? '');
  }
  return out;
}

async function caughtUp(): Promise<void> {
  const want = await contents(product);
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (JSON.stringify(await contents(analytics)) === JSON.stringify(want)) return;
    if (Date.now() > deadline) throw new Error('the subscriber did not catch up in 60 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A small deterministic generator (mulberry32), so that a failing round can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function round(next: () => number): Promise<void> {
  const n = (k: number): number => Math.floor(next() * k);
  // Rows over four days around the spring-forward day, some late (days before).
  await product.query(
    `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
     SELECT 1 + (i * $1) % 4, i % 7, i % 3, (ARRAY['running','success','failed','timeout'])[1 + (i + $1) % 4],
            timestamptz '2026-03-06 12:00Z' + make_interval(mins => (i * 97 * $1) % 5760), (i * $1) % 900, (i % 5) * 0.5
     FROM generate_series(1, 40) i;
     INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, session_id, occurred_at)
     SELECT 1 + (i * $1) % 3, i % 5, 'view', 's' || (i % 4), timestamptz '2026-03-06 12:00Z' + make_interval(mins => (i * 61 * $1) % 5760)
     FROM generate_series(1, 25) i;
     INSERT INTO public.credit_transactions (workspace_id, user_id, credits, source, created_at)
     SELECT 1 + (i * $1) % 3, i % 4, i * 0.25, 'execution', timestamptz '2026-03-06 12:00Z' + make_interval(mins => (i * 53 * $1) % 5760)
     FROM generate_series(1, 15) i`.replaceAll('$1', String(1 + n(50))),
  );
  const m = 2 + n(5);
  await product.query(
    `UPDATE public.execution_logs SET status = 'success', duration_ms = duration_ms + 1 WHERE id % ${m} = 0`,
  );
  await product.query(
    `UPDATE public.execution_logs SET started_at = started_at + interval '${1 + n(30)} hours' WHERE id % ${m + 1} = 1`,
  );
  await product.query(
    `UPDATE public.execution_logs SET workspace_id = workspace_id + 1 WHERE id % ${m + 2} = 2`,
  );
  await product.query(
    `UPDATE public.user_activity_events SET id = id + 100000, occurred_at = occurred_at - interval '1 day' WHERE id % ${m + 3} = 3 AND id < 100000`,
  );
  await product.query(`DELETE FROM public.execution_logs WHERE id % ${m + 4} = 4`);
  await product.query(`DELETE FROM public.credit_transactions WHERE id % ${m} = 1`);
  await product.query(
    `INSERT INTO public.execution_logs (id, workspace_id, user_id, workflow_id, status, started_at)
     SELECT id, workspace_id, user_id, workflow_id, status, started_at FROM public.execution_logs WHERE id % ${m + 5} = 0
     ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at - interval '2 days', workspace_id = 9`,
  );
}

describe('sources written by logical replication', () => {
  it('stay exact: every applied insert, update, move, key change and delete is captured', async () => {
    const next = random(20261201);
    for (let i = 0; i < 6; i += 1) {
      await round(next);
      await caughtUp();
      await refreshAll(analytics, ZONE);
      await assertRollupsMatchOracle(analytics, ZONE);
    }
    // A TRUNCATE on the product side, applied by the subscription, is recorded: the rollups of
    // that table refuse until rebuilt (migration 000013, its trigger enabled ALWAYS), then are exact.
    await product.query('TRUNCATE public.user_activity_events');
    await product.query(
      `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, session_id, occurred_at)
       VALUES (1, 1, 'view', 's', timestamptz '2026-03-07 10:00Z')`,
    );
    await caughtUp();
    const onEvents = builtinRollups.filter((d) => d.source === 'public.user_activity_events');
    for (const def of onEvents)
      await expect(
        refreshRollup(analytics, def, { timezone: ZONE, mode: { kind: 'incremental' } }),
      ).rejects.toBeInstanceOf(RollupRebuildRequiredError);
    for (const def of onEvents) await rebuildRollup(analytics, def, { timezone: ZONE });
    await refreshAll(analytics, ZONE);
    await assertRollupsMatchOracle(analytics, ZONE);
    // The subscription is still running (an apply error would have disabled or stalled it).
    const { rows: sub } = await analytics.query<{ enabled: boolean }>(
      `SELECT subenabled AS enabled FROM pg_subscription WHERE subname = 'analytics'`,
    );
    expect(sub[0]?.enabled).toBe(true);
  }, 300_000);
});
