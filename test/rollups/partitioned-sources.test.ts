import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseSettings } from '../../src/config/index.ts';
import {
  builtinRollups,
  cleanupOldData,
  defaultSources,
  ensureFuturePartitions,
  installRollups,
  prepareDatabase,
  rebuildRollup,
  refreshRollup,
  type RefreshResult,
} from '../../src/rollups/index.ts';
import { createLogger } from '../../src/log/index.ts';
import { runEagerly } from '../../src/runtime/index.ts';
import type { CleanupTaskResult, HealthReport } from '../../src/tasks/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { healthReport } from '../support/health.ts';
import { createPartitionedTestDatabase, partitionedSourcesSql } from '../support/partitioned-database.ts';
import { compareWithOracle, frozenAfterCleanup } from '../support/oracle.ts';
import { refreshAll } from '../support/rollup-helpers.ts';

const ZONE = 'America/New_York';
const DAY = 86_400_000;
const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
const utcDay = (offsetDays: number): string => new Date(today + offsetDays * DAY).toISOString().slice(0, 10);
const sources = [...new Set(builtinRollups.map((r) => r.source))];

/** Partitions of a table, by name, with their bounds as PostgreSQL prints them (in UTC). */
async function partitionsOf(db: TestDatabase, table: string): Promise<{ name: string; bound: string }[]> {
  const client = await db.pool.connect();
  try {
    await client.query("SET TIME ZONE 'UTC'");
    const { rows } = await client.query<{ name: string; bound: string }>(
      `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = $1::regclass ORDER BY c.relname`,
      [table],
    );
    return rows;
  } finally {
    await client.query('RESET TIME ZONE');
    client.release();
  }
}

async function health(
  db: TestDatabase,
  leadDays: number,
): Promise<{ status: string; detail: string } | undefined> {
  const report = await healthReport(db.pool, { partitions: { tables: sources, leadDays } });
  return report.checks.partitions;
}

describe('aggjobs migrate on source tables the application partitioned by day', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    // Partitions from 20 days ago to 3 days ahead, none beyond: migrate must create the rest.
    db = await createPartitionedTestDatabase(partitionedSourcesSql({ from: utcDay(-20), to: utcDay(3) }));
  });

  it('installs change capture on the partitioned parent, and partitions up to the lead ahead', async () => {
    const { rows: triggers } = await db.pool.query<{ table: string; name: string; clone: boolean }>(
      `SELECT t.tgrelid::regclass::text AS table, t.tgname AS name, t.tgparentid <> 0 AS clone
       FROM pg_trigger t WHERE t.tgrelid = 'public.execution_logs'::regclass AND t.tgname LIKE 'aggjobs%'
       ORDER BY 2`,
    );
    expect(triggers.map((t) => t.name)).toEqual([
      'aggjobs_log_deletes',
      'aggjobs_log_moves',
      'aggjobs_log_replicated',
      'aggjobs_log_truncate',
      'aggjobs_stamp_xid',
    ]);
    // The stamp trigger, and the aggjobs_xid index, exist on every partition (cloned from the parent).
    const { rows: parts } = await db.pool.query<{ name: string; stamp: boolean; xid_index: boolean }>(
      `SELECT c.relname AS name,
              EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'aggjobs_stamp_xid') AS stamp,
              EXISTS (SELECT FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
                      WHERE x.indrelid = c.oid AND a.attname = 'aggjobs_xid') AS xid_index
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'public.execution_logs'::regclass`,
    );
    expect(parts.length).toBeGreaterThan(23);
    expect(parts.filter((p) => !p.stamp || !p.xid_index)).toEqual([]);
    const { rows: index } = await db.pool.query<{ kind: string }>(
      `SELECT relkind AS kind FROM pg_class WHERE relname = 'execution_logs_aggjobs_xid_idx'`,
    );
    expect(index[0]?.kind).toBe('I'); // a partitioned index
    // Default lead: 7 days. Daily partitions continue from the newest bound to at least now + 7 days.
    for (const table of ['execution_logs', 'user_activity_events', 'credit_transactions']) {
      const names = (await partitionsOf(db, `public.${table}`)).map((p) => p.name);
      for (let d = -20; d <= 7; d += 1) expect(names).toContain(`${table}_p${utcDay(d).replaceAll('-', '')}`);
    }
    const created = (await partitionsOf(db, 'public.execution_logs')).find(
      (p) => p.name === `execution_logs_p${utcDay(5).replaceAll('-', '')}`,
    );
    expect(created?.bound).toBe(
      `FOR VALUES FROM ('${utcDay(5)} 00:00:00+00') TO ('${utcDay(6)} 00:00:00+00')`,
    );
    // An insert 7 days ahead finds its partition; and a second run creates nothing.
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at)
       VALUES (1, 1, 1, 'running', now() + interval '7 days')`,
    );
    await db.pool.query('DELETE FROM public.execution_logs');
    expect(
      (await ensureFuturePartitions(db.pool, sources, { leadDays: 7 })).flatMap((e) => e.created),
    ).toEqual([]);
    const again = await prepareDatabase(db.pool, parseSettings({ PARTITION_LEAD_DAYS: '9' }));
    expect(again.partitionsCreated.filter((n) => n.startsWith('public.execution_logs_'))).toEqual([
      `public.execution_logs_p${utcDay(8).replaceAll('-', '')}`,
      `public.execution_logs_p${utcDay(9).replaceAll('-', '')}`,
    ]);
  });

  it('reports in health when partitions fall behind the lead', async () => {
    expect((await health(db, 9))?.status).toBe('healthy');
    // 10 days ahead exist; a lead of 30 wants at least 15.
    const behind = await health(db, 30);
    expect(behind?.status).toBe('degraded');
    expect(behind?.detail).toMatch(
      /public\.execution_logs has partitions only [\d.]+ days ahead \(PARTITION_LEAD_DAYS=30\)/,
    );
    // Partitions ending within a day (those migrate created ahead dropped again): unhealthy, naming
    // the table.
    const short = await createPartitionedTestDatabase(
      partitionedSourcesSql({ from: utcDay(-3), to: utcDay(1) }),
    );
    for (let d = 1; d <= 8; d += 1)
      await short.pool.query(
        `DROP TABLE IF EXISTS public.credit_transactions_p${utcDay(d).replaceAll('-', '')}`,
      );
    const failing = await health(short, 7);
    expect(failing?.status).toBe('unhealthy');
    expect(failing?.detail).toMatch(
      /public\.credit_transactions has partitions only until .* inserts after it will fail/,
    );
    // Plain source tables: no entry.
    expect(await health(await createTestDatabase(), 7)).toBeUndefined();
  });

  it('the validated setting names the variable', () => {
    expect(() => parseSettings({ PARTITION_LEAD_DAYS: '1' })).toThrow(
      /PARTITION_LEAD_DAYS must be an integer from 2 to 366/,
    );
    expect(parseSettings({}).partitionLeadDays).toBe(7);
  });

  it('an update that moves a row to another partition logs its old group', async () => {
    await refreshAll(db.pool, ZONE);
    const { rows } = await db.pool.query<{ id: string; part: string }>(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms)
       VALUES (1, 1, 1, 'success', now() - interval '3 days', 100), (1, 2, 1, 'failed', now() - interval '3 days', 50)
       RETURNING id, tableoid::regclass::text AS part`,
    );
    await refreshAll(db.pool, ZONE);
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
    const first = rows[0];
    if (first === undefined) throw new Error('no row');
    await db.pool.query(
      `UPDATE public.execution_logs SET started_at = started_at - interval '2 days' WHERE id = $1`,
      [first.id],
    );
    const { rows: moved } = await db.pool.query<{ part: string }>(
      'SELECT tableoid::regclass::text AS part FROM public.execution_logs WHERE id = $1',
      [first.id],
    );
    expect(moved[0]?.part).not.toBe(first.part);
    const { rows: logged } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM aggjobs.change_log WHERE source_table = 'public.execution_logs'`,
    );
    expect(logged[0]?.n).toBeGreaterThan(0);
    await refreshAll(db.pool, ZONE);
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
  });

  it('logs under the parent a statement that names a partition, and a statement on the parent once', async () => {
    // Every partition, those migrate created ahead included, carries the three statement triggers.
    const { rows: missing } = await db.pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = ANY ($1::regclass[])
         AND (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid
              AND t.tgname IN ('aggjobs_log_deletes', 'aggjobs_log_moves', 'aggjobs_log_truncate')) <> 3`,
      [sources],
    );
    expect(missing).toEqual([]);
    // A partition the application attaches itself lacks them until the next migrate or cleanup.
    const own = `execution_logs_p${utcDay(40).replaceAll('-', '')}`;
    await db.pool.query(
      `CREATE TABLE public.${own} PARTITION OF public.execution_logs FOR VALUES FROM ('${utcDay(40)}T00:00:00Z') TO ('${utcDay(41)}T00:00:00Z')`,
    );
    const triggersOf = async (): Promise<number> =>
      (
        await db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = $1::regclass
           AND tgname IN ('aggjobs_log_deletes', 'aggjobs_log_moves', 'aggjobs_log_truncate')`,
          [`public.${own}`],
        )
      ).rows[0]?.n ?? -1;
    expect(await triggersOf()).toBe(0);
    // The row triggers are cloned from the parent with its firing modes (migration 000014): the
    // stamp ALWAYS, the log of replicated changes REPLICA only.
    const { rows: replicated } = await db.pool.query<{ name: string; enabled: string }>(
      `SELECT tgname AS name, tgenabled AS enabled FROM pg_trigger
       WHERE tgrelid = $1::regclass AND tgname IN ('aggjobs_stamp_xid', 'aggjobs_log_replicated') ORDER BY 1`,
      [`public.${own}`],
    );
    expect(replicated).toEqual([
      { name: 'aggjobs_log_replicated', enabled: 'R' },
      { name: 'aggjobs_stamp_xid', enabled: 'A' },
    ]);
    await ensureFuturePartitions(db.pool, sources, { leadDays: 7 });
    expect(await triggersOf()).toBe(3);
    await db.pool.query(`DROP TABLE public.${own}`);
    await refreshAll(db.pool, ZONE);
    const { rows } = await db.pool.query<{ id: string; part: string }>(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at)
       VALUES (1, 1, 1, 'running', now() - interval '2 days'), (2, 1, 1, 'running', now() - interval '2 days'),
              (3, 1, 1, 'running', now() - interval '2 days')
       RETURNING id, tableoid::regclass::text AS part`,
    );
    await refreshAll(db.pool, ZONE);
    const logged = async (): Promise<unknown[]> =>
      (
        await db.pool.query<{ source_table: string; ws: string }>(
          `SELECT source_table, old_row->>'workspace_id' AS ws FROM aggjobs.change_log ORDER BY id`,
        )
      ).rows;
    await db.pool.query('DELETE FROM aggjobs.change_log');
    const [a, b, c] = rows;
    if (a === undefined || b === undefined || c === undefined) throw new Error('rows missing');
    await db.pool.query(`DELETE FROM ${a.part} WHERE id = $1`, [a.id]);
    await db.pool.query(`UPDATE ${b.part} SET workspace_id = 3 WHERE id = $1`, [b.id]);
    await db.pool.query(`DELETE FROM public.execution_logs WHERE id = $1`, [c.id]);
    expect(await logged()).toEqual([
      { source_table: 'public.execution_logs', ws: '1' },
      { source_table: 'public.execution_logs', ws: '2' },
      { source_table: 'public.execution_logs', ws: '3' },
    ]);
    await refreshAll(db.pool, ZONE);
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
  });

  it('a partition the application adds is recomputed until it has the statement triggers, which the refresh puts on', async () => {
    const logs = 'public.execution_logs';
    const own = `public.execution_logs_p${utcDay(50).replaceAll('-', '')}`;
    await refreshAll(db.pool, ZONE);
    await db.pool.query(
      `CREATE TABLE ${own} PARTITION OF ${logs} FOR VALUES FROM ('${utcDay(50)}T00:00:00Z') TO ('${utcDay(51)}T00:00:00Z')`,
    );
    await db.pool.query(
      `INSERT INTO ${logs} (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       SELECT 1 + i % 4, i % 3, 1, 'success', timestamptz '${utcDay(50)}T00:00:00Z' + make_interval(mins => i * 37), i, 1
       FROM generate_series(1, 30) i`,
    );
    const onLogs = (results: RefreshResult[]): RefreshResult[] =>
      results.filter((r) => builtinRollups.find((d) => d.name === r.rollup)?.source === logs);
    const changes = (r: RefreshResult): string[] =>
      r.partitions?.map((p) => `${p.partition} ${p.change}`) ?? [];
    // A writer of the partition holds it: the triggers cannot go on (the lock on it waits 100 ms).
    const writer = await db.pool.connect();
    try {
      await writer.query('BEGIN');
      await writer.query(
        `INSERT INTO ${own} (workspace_id, user_id, workflow_id, status, started_at) VALUES (2, 1, 1, 'failed', '${utcDay(50)}T05:00:00Z')`,
      );
      for (const r of onLogs(await refreshAll(db.pool, ZONE))) {
        expect(changes(r)).toEqual([`${own} uncaptured`]);
        expect(r.partitionCapture).toMatchObject({ error: expect.stringMatching(/lock timeout/) });
      }
      // Statements that name the partition, not logged: it has no statement triggers yet.
      await writer.query(`DELETE FROM ${own} WHERE duration_ms % 3 = 0`);
      await writer.query(
        `UPDATE ${own} SET workspace_id = 7, started_at = started_at + interval '2 hours' WHERE duration_ms % 5 = 0`,
      );
      await writer.query('COMMIT');
    } finally {
      await writer.query('ROLLBACK').catch(() => undefined);
      writer.release();
    }
    expect(
      (
        await db.pool.query(
          `SELECT count(*)::int AS n FROM aggjobs.change_log WHERE old_row->>'workspace_id' = '7'`,
        )
      ).rows[0],
    ).toEqual({ n: 0 });
    // Recomputed again; the first rollup's run puts the triggers on, the others find them.
    const [first, ...others] = onLogs(await refreshAll(db.pool, ZONE));
    expect(changes(first as RefreshResult)).toEqual([`${own} uncaptured`]);
    expect(first?.partitionCapture).toEqual({ created: 3 });
    for (const r of others) expect(changes(r)).toEqual([`${own} captured`]);
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
    // From here statements that name it are logged; the first rollup recomputes it once more.
    await db.pool.query(`DELETE FROM ${own} WHERE duration_ms % 7 = 0`);
    const [firstAgain, ...othersAgain] = onLogs(await refreshAll(db.pool, ZONE));
    expect(changes(firstAgain as RefreshResult)).toEqual([`${own} captured`]);
    for (const r of othersAgain) expect(r.partitions).toBeUndefined();
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
    for (const r of onLogs(await refreshAll(db.pool, ZONE))) expect(r.partitions).toBeUndefined();
    // A trigger disabled is as good as none: recomputed by every run, and the run says so.
    await db.pool.query(`ALTER TABLE ${own} DISABLE TRIGGER aggjobs_log_deletes`);
    await db.pool.query(`DELETE FROM ${own} WHERE duration_ms % 11 = 0`);
    for (const r of onLogs(await refreshAll(db.pool, ZONE))) {
      expect(changes(r)).toEqual([`${own} uncaptured`]);
      expect(r.partitionCapture).toMatchObject({ error: expect.stringMatching(/are disabled/) });
    }
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
    await db.pool.query(`ALTER TABLE ${own} ENABLE TRIGGER aggjobs_log_deletes`);
    for (const r of onLogs(await refreshAll(db.pool, ZONE))) expect(changes(r)).toEqual([`${own} captured`]);
    await db.pool.query(
      `DELETE FROM ${logs} WHERE started_at >= '${utcDay(50)}' AND started_at < '${utcDay(51)}'`,
    );
    await db.pool.query(`DROP TABLE ${own}`);
    await refreshAll(db.pool, ZONE);
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
  });

  it('records a TRUNCATE that names a partition under the parent: its rollups refuse until rebuilt', async () => {
    const { rows } = await db.pool.query<{ part: string }>(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at)
       VALUES (1, 1, 1, 'running', now() - interval '4 days'), (2, 1, 1, 'running', now() - interval '4 days')
       RETURNING tableoid::regclass::text AS part`,
    );
    await refreshAll(db.pool, ZONE);
    const part = rows[0]?.part ?? '';
    await db.pool.query(`TRUNCATE ${part}`);
    const onLogs = builtinRollups.filter((d) => d.source === 'public.execution_logs');
    for (const def of onLogs)
      await expect(
        refreshRollup(db.pool, def, { timezone: ZONE, mode: { kind: 'incremental' } }),
      ).rejects.toThrow(`analytics.${def.name} needs a rebuild: public.${part} was truncated at`);
    for (const def of onLogs) await rebuildRollup(db.pool, def, { timezone: ZONE });
    await refreshAll(db.pool, ZONE);
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
  });

  it('recomputes the range of a partition attached with rows, and of one detached or dropped with rows', async () => {
    const logs = 'public.execution_logs';
    const columns = 'workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used';
    const rowsAt = (offsetDays: number, n: number): string =>
      `SELECT 1 + i % 3, i % 4, i % 2, 'success', timestamptz '${utcDay(offsetDays)}T00:00:00Z' + make_interval(mins => i * 17), i, 1
       FROM generate_series(1, ${n}) i`;
    const bounds = (offsetDays: number): string =>
      `FOR VALUES FROM ('${utcDay(offsetDays)}T00:00:00Z') TO ('${utcDay(offsetDays + 1)}T00:00:00Z')`;
    await db.pool.query(`INSERT INTO ${logs} (${columns}) ${rowsAt(-6, 40)}`);
    await refreshAll(db.pool, ZONE);
    // Two staging tables filled before the next refresh's snapshot: one stamped by the column
    // default (LIKE … INCLUDING DEFAULTS), one without a stamp (as rows written before aggjobs).
    await db.pool.query(
      `CREATE TABLE public.staging_a (LIKE ${logs} INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
       INSERT INTO public.staging_a (${columns}) ${rowsAt(45, 30)};
       CREATE TABLE public.staging_b (LIKE ${logs} INCLUDING CONSTRAINTS);
       INSERT INTO public.staging_b (id, ${columns}) SELECT nextval('public.execution_logs_id_seq'), r.* FROM (${rowsAt(46, 20)}) r`,
    );
    await refreshAll(db.pool, ZONE);
    await db.pool.query(
      `ALTER TABLE ${logs} ATTACH PARTITION public.staging_a ${bounds(45)};
       ALTER TABLE ${logs} ATTACH PARTITION public.staging_b ${bounds(46)}`,
    );
    // A partition created after the last refresh and filled after it: its rows are the change
    // log's business, but it lacks the statement triggers (so do the two staging tables).
    await db.pool.query(`CREATE TABLE public.later_c PARTITION OF ${logs} ${bounds(47)}`);
    await db.pool.query(`INSERT INTO ${logs} (${columns}) ${rowsAt(47, 10)}`);
    const attached = await refreshAll(db.pool, ZONE);
    const onLogs = (results: RefreshResult[]): RefreshResult[] =>
      results.filter((r) => builtinRollups.find((d) => d.name === r.rollup)?.source === logs);
    const changes = (r: RefreshResult): string[] =>
      r.partitions?.map((p) => `${p.partition} ${p.change}`) ?? [];
    // The first rollup refreshed recomputes later_c as a partition without triggers, then puts
    // them on the three (3 each); the others find later_c with triggers put on after its attach.
    const [first, ...others] = onLogs(attached);
    expect(others).toHaveLength(3);
    expect(changes(first as RefreshResult)).toEqual([
      'public.staging_a attached',
      'public.staging_b attached',
      'public.later_c uncaptured',
    ]);
    expect(first?.partitionCapture).toEqual({ created: 9 });
    for (const r of others) {
      expect(changes(r)).toEqual([
        'public.staging_a attached',
        'public.staging_b attached',
        'public.later_c captured',
      ]);
      expect(r.partitionCapture).toBeUndefined();
    }
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
    // The first one's next run recomputes the three once more (they had no triggers at its last
    // run), the others' nothing.
    const [firstAgain, ...othersAgain] = onLogs(await refreshAll(db.pool, ZONE));
    expect(changes(firstAgain as RefreshResult)).toEqual([
      'public.staging_a captured',
      'public.staging_b captured',
      'public.later_c captured',
    ]);
    for (const r of othersAgain) expect(r.partitions).toBeUndefined();

    // Detached with its rows, and dropped with its rows.
    const { rows } = await db.pool.query<{ part: string }>(
      `SELECT DISTINCT tableoid::regclass::text AS part FROM ${logs} WHERE started_at >= '${utcDay(-6)}' AND started_at < '${utcDay(-5)}'`,
    );
    const sixDaysAgo = rows[0]?.part ?? '';
    await db.pool.query(`ALTER TABLE ${logs} DETACH PARTITION ${sixDaysAgo}`);
    await db.pool.query('DROP TABLE public.staging_a');
    const gone = await refreshAll(db.pool, ZONE);
    for (const r of onLogs(gone))
      expect(r.partitions?.map((p) => `${p.partition} ${p.change}`).sort()).toEqual([
        `public.${sixDaysAgo} detached`,
        'public.staging_a detached',
      ]);
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
    // And the next run has nothing more to recompute.
    for (const r of onLogs(await refreshAll(db.pool, ZONE))) expect(r.partitions).toBeUndefined();
    await db.pool.query(`DROP TABLE ${sixDaysAgo}, public.staging_b, public.later_c`);
    await refreshAll(db.pool, ZONE);
  });
});

describe('a covering index on a partitioned source', () => {
  it('is built on each partition concurrently, attached, valid, and comes with partitions created later', async () => {
    const db = await createPartitionedTestDatabase(
      partitionedSourcesSql({ from: utcDay(-5), to: utcDay(1) }),
    );
    const hourly = builtinRollups.find((d) => d.name === 'execution_metrics_hourly');
    if (hourly === undefined) throw new Error('no hourly rollup');
    const withCover = [...builtinRollups.filter((d) => d !== hourly), { ...hourly, coveringIndex: true }];
    await installRollups(db.pool, withCover);
    const state = async (): Promise<{ parentValid: boolean; partitions: number; covered: number }> => {
      const { rows } = await db.pool.query<{ parent_valid: boolean; partitions: number; covered: number }>(
        `SELECT (SELECT x.indisvalid FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                 WHERE x.indrelid = 'public.execution_logs'::regclass AND i.relname LIKE '%aggjobs\\_cover\\_%') AS parent_valid,
                (SELECT count(*)::int FROM pg_partition_tree('public.execution_logs') WHERE isleaf) AS partitions,
                (SELECT count(*)::int FROM pg_partition_tree('public.execution_logs') t
                  WHERE t.isleaf AND EXISTS (
                    -- a valid index of the partition attached to the parent's covering index
                    SELECT FROM pg_index x JOIN pg_inherits h ON h.inhrelid = x.indexrelid
                    JOIN pg_class pi ON pi.oid = h.inhparent
                    WHERE x.indrelid = t.relid AND x.indisvalid AND pi.relname LIKE '%aggjobs\\_cover\\_%')) AS covered`,
      );
      const r = rows[0];
      return {
        parentValid: r?.parent_valid === true,
        partitions: r?.partitions ?? 0,
        covered: r?.covered ?? -1,
      };
    };
    const built = await state();
    expect(built.parentValid).toBe(true);
    expect(built.covered).toBe(built.partitions);
    await ensureFuturePartitions(db.pool, sources, { leadDays: 12 });
    const later = await state();
    expect(later.partitions).toBeGreaterThan(built.partitions);
    expect(later.covered).toBe(later.partitions);
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms)
       SELECT 1 + i % 3, i % 5, i % 2, 'success', now() - make_interval(hours => i), i FROM generate_series(1, 100) i`,
    );
    await refreshAll(db.pool, ZONE);
    expect(await compareWithOracle(db.pool, ZONE)).toEqual([]);
    // No rollup asks for it any more: dropped (with the partitions' indexes).
    await installRollups(db.pool, builtinRollups);
    expect((await state()).covered).toBe(0);
  });
});

describe('retention on source tables partitioned by day', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createPartitionedTestDatabase(partitionedSourcesSql({ from: utcDay(-40), to: utcDay(3) }));
    // Every 6 hours over the last 38 days, 3 workspaces: all three sources.
    await db.pool.query(`
      INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
      SELECT ws, ws * 10 + (h % 3), h % 4, CASE WHEN h % 5 = 0 THEN 'failed' ELSE 'success' END,
             date_trunc('hour', now()) - make_interval(hours => h * 6), 100 + h, 1.5
      FROM generate_series(1, 152) h, generate_series(1, 3) ws;
      INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id)
      SELECT ws, ws * 10, 'login', date_trunc('hour', now()) - make_interval(hours => h * 6), 's' || h
      FROM generate_series(1, 152) h, generate_series(1, 3) ws;
      INSERT INTO public.credit_transactions (workspace_id, user_id, source, credits, created_at)
      SELECT ws, ws * 10, 'api', 0.25 * h, date_trunc('hour', now()) - make_interval(hours => h * 6)
      FROM generate_series(1, 152) h, generate_series(1, 3) ws;`);
    await refreshAll(db.pool, ZONE);
  });

  it('drops whole partitions before the watermark, deletes no row, and keeps the rollups exact', async () => {
    const dailyBefore = (
      await db.pool.query(`SELECT * FROM analytics.execution_metrics_daily ORDER BY 1, 2`)
    ).rows.map((r: Record<string, unknown>) => ({ ...r, updated_at: undefined }));
    const result = await cleanupOldData(db.pool, builtinRollups, {
      retentionDays: 10,
      sources: defaultSources,
      rollupRetentionFactor: 2,
      batchSize: 50,
    });
    // The cutoff is now - 10 days; the watermark is the UTC midnight that starts its partition.
    const cutoff = new Date(result.sourceCutoff);
    const watermark = new Date(Math.floor(cutoff.getTime() / DAY) * DAY);
    for (const table of ['public.execution_logs', 'public.user_activity_events']) {
      expect(result.deleted[table]).toBe(0);
      expect(result.partitions[table]?.watermark).toBe(watermark.toISOString());
      // Partitions of days -40 … up to the watermark's day (excluded), oldest first.
      const days = Math.round((watermark.getTime() - (today - 40 * DAY)) / DAY);
      expect(result.partitions[table]?.dropped).toEqual(
        Array.from(
          { length: days },
          (_, i) => `public.${table.slice(7)}_p${utcDay(-40 + i).replaceAll('-', '')}`,
        ),
      );
      // Gone: not attached, and not left behind as tables.
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_class WHERE relname = ANY($1::text[])`,
        [result.partitions[table]?.dropped.map((n) => n.split('.')[1])],
      );
      expect(rows[0]?.n).toBe(0);
      const { rows: oldest } = await db.pool.query<{ oldest: Date; stored: Date }>(
        `SELECT (SELECT min(${table === 'public.execution_logs' ? 'started_at' : 'occurred_at'}) FROM ${table}) AS oldest,
                (SELECT cutoff FROM aggjobs.retention_watermarks WHERE source_table = $1) AS stored`,
        [table],
      );
      expect(oldest[0]?.oldest.getTime()).toBeGreaterThanOrEqual(watermark.getTime());
      expect(oldest[0]?.oldest.getTime()).toBeLessThan(cutoff.getTime()); // rows up to one partition longer
      expect(oldest[0]?.stored.toISOString()).toBe(watermark.toISOString());
    }
    // Credit transactions are a ledger: not in the policy, nothing dropped.
    expect(result.partitions['public.credit_transactions']).toBeUndefined();
    // Frozen buckets are untouched by the drop (a DROP fires no trigger) and by later refreshes.
    await refreshAll(db.pool, ZONE);
    const dailyAfter = (
      await db.pool.query(
        `SELECT * FROM analytics.execution_metrics_daily WHERE bucket_start < $1 ORDER BY 1, 2`,
        [watermark],
      )
    ).rows.map((r: Record<string, unknown>) => ({ ...r, updated_at: undefined }));
    expect(dailyAfter.length).toBeGreaterThan(0);
    expect(dailyAfter).toEqual(
      dailyBefore.filter(
        (r) => (r as unknown as { bucket_start: Date }).bucket_start.getTime() < watermark.getTime(),
      ),
    );
    // Then late rows, updates that move rows across partitions, deletes: exact after the watermark.
    await db.pool.query(`
      INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at)
      VALUES (2, 7, 1, 'failed', now() - interval '8 days'), (3, 7, 1, 'success', now() - interval '1 day');
      UPDATE public.execution_logs SET started_at = started_at - interval '1 day 3 hours'
        WHERE id % 7 = 0 AND started_at > now() - interval '8 days';
      UPDATE public.user_activity_events SET occurred_at = occurred_at + interval '2 days', workspace_id = 3
        WHERE id % 5 = 0 AND occurred_at > now() - interval '8 days' AND occurred_at < now() - interval '3 days';
      DELETE FROM public.execution_logs WHERE id % 11 = 0;`);
    await refreshAll(db.pool, ZONE);
    const frozen = frozenAfterCleanup({
      sourceCutoff: watermark.toISOString(),
      rollupCutoff: result.rollupCutoff,
    });
    expect(await compareWithOracle(db.pool, ZONE, { frozenBefore: frozen })).toEqual([]);
  });

  it('retries a detach that waits past its lock timeout, and writers never wait', async () => {
    // Another session holds SHARE UPDATE EXCLUSIVE on the parent for 1.5 s (as a VACUUM or an index
    // build would): the detach's 200 ms lock timeout expires, and a later attempt succeeds.
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE public.execution_logs IN SHARE UPDATE EXCLUSIVE MODE');
    const released = new Promise<void>((resolve) => {
      setTimeout(() => {
        void holder.query('COMMIT').then(() => resolve());
      }, 1500);
    });
    // Meanwhile an application writer inserts every 50 ms; none may take long.
    let writing = true;
    const waits: number[] = [];
    const writer = (async () => {
      while (writing) {
        const started = performance.now();
        await db.pool.query(
          `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at)
           VALUES (1, 1, 1, 'running', now())`,
        );
        waits.push(performance.now() - started);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const policy = {
      retentionDays: 5,
      sources: defaultSources.slice(0, 1),
      rollupRetentionFactor: 2,
      batchSize: 50,
    };
    // One attempt only: the lock timeout ends it, naming the partition; nothing was dropped.
    await expect(
      cleanupOldData(db.pool, builtinRollups, {
        ...policy,
        partitionDdl: { lockTimeoutMs: 200, attempts: 1, retryDelayMs: 0 },
      }),
    ).rejects.toThrow(
      /detaching partition public\.execution_logs_p\d{8} of public\.execution_logs failed after 1 attempt\(s\): canceling statement due to lock timeout/,
    );
    const started = performance.now();
    const result = await cleanupOldData(db.pool, builtinRollups, {
      retentionDays: 5,
      sources: defaultSources.slice(0, 1),
      rollupRetentionFactor: 2,
      batchSize: 50,
      partitionDdl: { lockTimeoutMs: 200, attempts: 20, retryDelayMs: 200 },
    });
    writing = false;
    await writer;
    await released;
    await holder.end();
    // It could only finish after the holder let go, by a later attempt.
    expect(performance.now() - started).toBeGreaterThan(1000);
    expect(result.partitions['public.execution_logs']?.dropped.length).toBe(5);
    expect(waits.length).toBeGreaterThan(5);
    expect(Math.max(...waits)).toBeLessThan(1000);
  });
});

describe('the cleanup_old_data task on partitioned sources', () => {
  it('creates the partitions of PARTITION_LEAD_DAYS ahead, drops the expired ones, and health is then healthy', async () => {
    const db = await createPartitionedTestDatabase(
      partitionedSourcesSql({ from: utcDay(-15), to: utcDay(2) }),
    );
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at)
       SELECT 1, 1, 1, 'success', now() - make_interval(days => d) FROM generate_series(0, 14) d`,
    );
    const settings = parseSettings({ LOG_LEVEL: 'silent', PARTITION_LEAD_DAYS: '12' });
    const context = { settings, pool: db.pool, logger: createLogger('silent') };
    const { result } = await runEagerly(context, 'cleanup_old_data', { kwargs: { retention_days: 10 } });
    const cleanup = result as CleanupTaskResult;
    const ahead = cleanup.partitionsAhead.find((p) => p.table === 'public.execution_logs');
    // migrate made them up to 7 days ahead; the task adds the rest up to 12.
    expect(ahead?.created).toEqual(
      [8, 9, 10, 11, 12].map((d) => `public.execution_logs_p${utcDay(d).replaceAll('-', '')}`),
    );
    expect(cleanup.partitions['public.execution_logs']?.dropped).toEqual(
      [-15, -14, -13, -12, -11].map((d) => `public.execution_logs_p${utcDay(d).replaceAll('-', '')}`),
    );
    const { result: report } = await runEagerly(context, 'health_check', {});
    expect((report as HealthReport).checks.partitions?.status).toBe('healthy');
  });
});
