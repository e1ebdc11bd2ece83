import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  installRollups,
  pruneChangeLog,
  pruneUnreadChangeLog,
  refreshRollup,
  type RollupDefinition,
} from '../../src/rollups/index.ts';
import { readSourcePartitions } from '../../src/rollups/partition-changes.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

/**
 * Partition changes that fire no trigger (src/rollups/partition-changes.ts), on sources the
 * application partitioned itself: by id rather than time, a partition detached, changed while
 * detached and attached again, and bounds printed under another DateStyle and TimeZone. The
 * expected rows are a plain GROUP BY over the source, written here.
 */
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await db.pool.query(
    `DROP TABLE IF EXISTS public.ev, public.ev_a, public.ev_b, public.ev_c, public.ev_m, analytics.ev_daily;
     DELETE FROM aggjobs.rollup_state WHERE rollup = 'ev_daily'`,
  );
});

const def: RollupDefinition = {
  name: 'ev_daily',
  source: 'public.ev',
  timeColumn: 'at',
  grain: 'day',
  dimensions: [{ column: 'ws', type: 'bigint' }],
  measures: [{ name: 'n', type: 'bigint', sql: 'count(*)' }],
};

async function refresh(): Promise<void> {
  await refreshRollup(db.pool, def, { timezone: 'UTC', mode: { kind: 'incremental' } });
}

async function differing(): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `WITH want AS (SELECT date_trunc('day', at, 'UTC') AS bucket_start, ws, count(*) AS n FROM public.ev GROUP BY 1, 2),
          have AS (SELECT bucket_start, ws, n FROM analytics.ev_daily)
     SELECT (SELECT count(*) FROM (SELECT * FROM want EXCEPT SELECT * FROM have) a)::int
          + (SELECT count(*) FROM (SELECT * FROM have EXCEPT SELECT * FROM want) b)::int AS n`,
  );
  return rows[0]?.n ?? -1;
}

describe('partitions changed behind the triggers', () => {
  it('a source partitioned by id, not time: refreshes work, and a detached partition is recomputed whole', async () => {
    await db.pool.query(
      `CREATE TABLE public.ev (id bigint PRIMARY KEY, ws bigint NOT NULL, at timestamptz NOT NULL) PARTITION BY RANGE (id);
       CREATE TABLE public.ev_a PARTITION OF public.ev FOR VALUES FROM (0) TO (1000);
       CREATE TABLE public.ev_b PARTITION OF public.ev FOR VALUES FROM (1000) TO (MAXVALUE)`,
    );
    await installRollups(db.pool, [def]);
    await db.pool.query(
      `INSERT INTO public.ev (id, ws, at) SELECT g, g % 3, timestamptz '2026-11-01' + g * interval '7 minutes' FROM generate_series(1, 2000) g`,
    );
    await refresh();
    await refresh();
    expect(await differing()).toBe(0);
    await db.pool.query('ALTER TABLE public.ev DETACH PARTITION public.ev_a');
    const result = await refreshRollup(db.pool, def, { timezone: 'UTC', mode: { kind: 'incremental' } });
    expect(result.partitions).toEqual([
      { partition: 'public.ev_a', change: 'detached', start: '-infinity', end: 'infinity' },
    ]);
    expect(await differing()).toBe(0);
  });

  it('a partition detached, changed (deletes, updates, a truncate) and attached again is recomputed', async () => {
    await db.pool.query(
      `CREATE TABLE public.ev (id bigint, ws bigint NOT NULL, at timestamptz NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
       CREATE TABLE public.ev_a PARTITION OF public.ev FOR VALUES FROM ('2026-11-01Z') TO ('2026-11-03Z');
       CREATE TABLE public.ev_b PARTITION OF public.ev FOR VALUES FROM ('2026-11-03Z') TO ('2026-11-05Z')`,
    );
    await installRollups(db.pool, [def]);
    await db.pool.query(
      `INSERT INTO public.ev (id, ws, at) SELECT g, g % 3, timestamptz '2026-11-01' + g * interval '5 minutes' FROM generate_series(1, 1100) g`,
    );
    await refresh();
    await refresh();
    await db.pool.query(
      `ALTER TABLE public.ev DETACH PARTITION public.ev_a;
       DELETE FROM public.ev_a WHERE ws = 1;
       UPDATE public.ev_a SET ws = 7 WHERE ws = 2;
       ALTER TABLE public.ev ATTACH PARTITION public.ev_a FOR VALUES FROM ('2026-11-01Z') TO ('2026-11-03Z');
       ALTER TABLE public.ev DETACH PARTITION public.ev_b;
       TRUNCATE public.ev_b;
       ALTER TABLE public.ev ATTACH PARTITION public.ev_b FOR VALUES FROM ('2026-11-03Z') TO ('2026-11-05Z')`,
    );
    const result = await refreshRollup(db.pool, def, { timezone: 'UTC', mode: { kind: 'incremental' } });
    expect(result.partitions?.map((p) => `${p.partition} ${p.change}`).sort()).toEqual([
      'public.ev_a attached',
      'public.ev_a detached',
      'public.ev_b attached',
      'public.ev_b detached',
    ]);
    expect(await differing()).toBe(0);
    // Nothing more to recompute on the next run.
    const next = await refreshRollup(db.pool, def, { timezone: 'UTC', mode: { kind: 'incremental' } });
    expect(next.partitions).toBeUndefined();

    // What was done to ev_a while detached was logged under its own name: no rollup reads it, and
    // the prune by source leaves it; the daily prune of unread entries removes it, and only it.
    const logged = async (): Promise<Record<string, number>> => {
      const { rows } = await db.pool.query<{ source_table: string; n: number }>(
        `SELECT source_table, count(*)::int AS n FROM aggjobs.change_log GROUP BY 1`,
      );
      return Object.fromEntries(rows.map((r) => [r.source_table, r.n]));
    };
    await db.pool.query(`UPDATE public.ev SET ws = 9 WHERE id = 5`);
    await pruneChangeLog(db.pool, 'public.ev');
    const before = await logged();
    expect(before['public.ev_a']).toBeGreaterThan(0);
    expect(before['public.ev']).toBe(1);
    expect(await pruneUnreadChangeLog(db.pool)).toBe(before['public.ev_a']);
    expect(await logged()).toEqual({ 'public.ev': 1 });
    await refresh();
    expect(await differing()).toBe(0);
  });

  it('a statement that names a middle level of a sub-partitioned source is logged; a level without the triggers is recomputed', async () => {
    await db.pool.query(
      `CREATE TABLE public.ev (id bigint, ws bigint NOT NULL, at timestamptz NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
       CREATE TABLE public.ev_m PARTITION OF public.ev FOR VALUES FROM ('2026-11-01Z') TO ('2026-11-05Z') PARTITION BY RANGE (at);
       CREATE TABLE public.ev_a PARTITION OF public.ev_m FOR VALUES FROM ('2026-11-01Z') TO ('2026-11-03Z');
       CREATE TABLE public.ev_b PARTITION OF public.ev_m FOR VALUES FROM ('2026-11-03Z') TO ('2026-11-05Z');
       CREATE TABLE public.ev_c PARTITION OF public.ev FOR VALUES FROM ('2026-11-05Z') TO ('2026-11-07Z')`,
    );
    await installRollups(db.pool, [def]);
    // Every level below the root has the three statement triggers (migration 000016).
    const { rows: triggers } = await db.pool.query<{ rel: string; n: number }>(
      `SELECT t.tgrelid::regclass::text AS rel, count(*)::int AS n FROM pg_trigger t
       WHERE t.tgrelid IN ('public.ev_m'::regclass, 'public.ev_a'::regclass, 'public.ev_b'::regclass, 'public.ev_c'::regclass)
         AND t.tgname IN ('aggjobs_log_deletes', 'aggjobs_log_moves', 'aggjobs_log_truncate')
       GROUP BY 1 ORDER BY 1`,
    );
    expect(triggers).toEqual(['ev_a', 'ev_b', 'ev_c', 'ev_m'].map((rel) => ({ rel, n: 3 })));
    await db.pool.query(
      `INSERT INTO public.ev (id, ws, at) SELECT g, g % 3, timestamptz '2026-11-01' + g * interval '7 minutes' FROM generate_series(1, 1200) g`,
    );
    await refresh();
    await refresh();
    expect(await differing()).toBe(0);
    await db.pool.query(
      `DELETE FROM public.ev_m WHERE ws = 1 AND id % 2 = 0;
       UPDATE public.ev_m SET ws = 7 WHERE ws = 2 AND id % 3 = 0`,
    );
    const logged = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM aggjobs.change_log WHERE source_table = 'public.ev'`,
    );
    expect(logged.rows[0]?.n).toBeGreaterThan(0);
    const result = await refreshRollup(db.pool, def, { timezone: 'UTC', mode: { kind: 'incremental' } });
    expect(result.partitions).toBeUndefined();
    expect(await differing()).toBe(0);
    // Without one of them on the middle level, its leaves are recomputed; the refresh puts it back
    // and the next run recomputes them once more.
    await db.pool.query('DROP TRIGGER aggjobs_log_deletes ON public.ev_m');
    await db.pool.query('DELETE FROM public.ev_m WHERE ws = 0 AND id % 5 = 0');
    const uncaptured = await refreshRollup(db.pool, def, { timezone: 'UTC', mode: { kind: 'incremental' } });
    expect(uncaptured.partitions?.map((p) => `${p.partition} ${p.change}`)).toEqual([
      'public.ev_a uncaptured',
      'public.ev_b uncaptured',
    ]);
    expect(uncaptured.partitionCapture).toEqual({ created: 1 });
    expect(await differing()).toBe(0);
    const captured = await refreshRollup(db.pool, def, { timezone: 'UTC', mode: { kind: 'incremental' } });
    expect(captured.partitions?.map((p) => `${p.partition} ${p.change}`)).toEqual([
      'public.ev_a captured',
      'public.ev_b captured',
    ]);
    const next = await refreshRollup(db.pool, def, { timezone: 'UTC', mode: { kind: 'incremental' } });
    expect(next.partitions).toBeUndefined();
    expect(await differing()).toBe(0);
  });

  it('reads bounds as instants whatever the session DateStyle and TimeZone', async () => {
    await db.pool.query(
      `CREATE TABLE public.ev (id bigint, ws bigint NOT NULL, at timestamptz NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
       CREATE TABLE public.ev_a PARTITION OF public.ev FOR VALUES FROM ('2026-11-01Z') TO ('2026-11-02Z');
       CREATE TABLE public.ev_b PARTITION OF public.ev FOR VALUES FROM ('2026-11-02Z') TO (MAXVALUE)`,
    );
    const client = await db.pool.connect();
    try {
      // 'SQL' prints zone abbreviations (CST for Asia/Shanghai), which read back as US Central.
      await client.query(`BEGIN; SET LOCAL DateStyle = 'SQL, MDY'; SET LOCAL TimeZone = 'Asia/Shanghai'`);
      const { partitions } = await readSourcePartitions(client, def);
      await client.query('ROLLBACK');
      expect(
        partitions.map((p) => [
          p.name,
          p.from && new Date(p.from).toISOString(),
          p.to && new Date(p.to).toISOString(),
        ]),
      ).toEqual([
        ['public.ev_a', '2026-11-01T00:00:00.000Z', '2026-11-02T00:00:00.000Z'],
        ['public.ev_b', '2026-11-02T00:00:00.000Z', null],
      ]);
    } finally {
      client.release();
    }
  });
});
