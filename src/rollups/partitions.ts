/**
 * Source tables range-partitioned by their time column (docs/scaling.md "The source tables"): the
 * partitions aggjobs creates ahead of time, how far they reach (health), and the partitions that
 * retention detaches and drops instead of deleting rows.
 *
 * aggjobs does not decide how a table is partitioned: the application creates the partitioned
 * table and its first partitions; aggjobs continues its layout (the width of its newest partition:
 * a day, a week, a calendar month, or any fixed width) from the newest upper bound.
 */
import type { Pool, PoolClient, Queryable } from '../db/index.ts';
import { nextPartitionBounds, partitionName } from './partition-bounds.ts';
import { ident, qualified } from './sql-identifier.ts';

export interface TimePartition {
  /** Schema-qualified, each part quoted where needed. */
  name: string;
  /** Lower bound; null: MINVALUE. */
  from: Date | null;
  /** Upper bound (exclusive); null: MAXVALUE. */
  to: Date | null;
  /** Left half-detached by an interrupted `DETACH PARTITION … CONCURRENTLY`. */
  detachPending: boolean;
}

export interface TimePartitionedTable {
  /** Schema-qualified name, as given. */
  table: string;
  /** The partition key: one timestamptz column. */
  column: string;
  /** Ordered by lower bound (MINVALUE first). */
  partitions: TimePartition[];
  /** A DEFAULT partition exists: PostgreSQL refuses DETACH … CONCURRENTLY then. */
  hasDefault: boolean;
}

/**
 * The table's range partitions when it is partitioned by RANGE on one timestamptz column (the
 * engine's time columns are timestamptz); undefined for any other table (plain, partitioned
 * otherwise, missing), which keeps batched deletes and gets no partitions ahead.
 */
export async function timePartitionsOf(
  db: Queryable,
  table: string,
): Promise<TimePartitionedTable | undefined> {
  // $1 table
  const { rows: keys } = await db.query<{ column: string }>(
    `SELECT a.attname AS column
     FROM pg_partitioned_table p
     JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
     WHERE p.partrelid = to_regclass($1) AND p.partstrat = 'r' AND p.partnatts = 1
       AND a.atttypid = 'timestamptz'::regtype`,
    [table],
  );
  const column = keys[0]?.column;
  if (column === undefined) return undefined;
  // The bounds as PostgreSQL prints them (in this session's zone), read back as timestamptz in
  // the same session: "FOR VALUES FROM ('…') TO ('…')", MINVALUE/MAXVALUE unquoted, or DEFAULT.
  // $1 table
  const { rows } = await db.query<{
    name: string;
    bound: string;
    from: Date | null;
    to: Date | null;
    detach_pending: boolean;
  }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS name, b.bound,
            (regexp_match(b.bound, 'FROM \\(''([^'']*)''\\)'))[1]::timestamptz AS "from",
            (regexp_match(b.bound, 'TO \\(''([^'']*)''\\)'))[1]::timestamptz AS "to",
            i.inhdetachpending AS detach_pending
     FROM pg_inherits i
     JOIN pg_class c ON c.oid = i.inhrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
     WHERE i.inhparent = to_regclass($1)`,
    [table],
  );
  const partitions = rows
    .filter((r) => r.bound !== 'DEFAULT')
    .map((r) => ({ name: r.name, from: r.from, to: r.to, detachPending: r.detach_pending }))
    .sort((a, b) => (a.from?.getTime() ?? -Infinity) - (b.from?.getTime() ?? -Infinity));
  return { table, column, partitions, hasDefault: rows.some((r) => r.bound === 'DEFAULT') };
}

/**
 * Up to where inserts have a partition: the newest upper bound (null: a MAXVALUE partition or a
 * DEFAULT one takes every later row; undefined: no bounded partition at all).
 */
export function coveredUntil(info: TimePartitionedTable): Date | null | undefined {
  if (info.hasDefault || info.partitions.some((p) => p.to === null)) return null;
  const ends = info.partitions.flatMap((p) => (p.to === null ? [] : [p.to.getTime()]));
  return ends.length === 0 ? undefined : new Date(Math.max(...ends));
}

const DAY_MS = 86_400_000;

/** Each DDL statement of partition maintenance waits this long for its lock, then retries. */
export interface DdlLimits {
  lockTimeoutMs: number;
  attempts: number;
  /** Pause between attempts. */
  retryDelayMs: number;
}

export const defaultDdlLimits: DdlLimits = { lockTimeoutMs: 1000, attempts: 5, retryDelayMs: 2000 };

/** 55P03 lock_not_available (lock_timeout), 40P01 deadlock_detected: worth another attempt. */
function retryable(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === '55P03' || code === '40P01';
}

async function withRetries<T>(
  limits: DdlLimits,
  what: string,
  attempt: (n: number) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  for (let n = 1; ; n += 1) {
    signal?.throwIfAborted();
    try {
      return await attempt(n);
    } catch (error) {
      if (!retryable(error) || n >= limits.attempts) {
        const reason = error instanceof Error ? error.message : String(error);
        throw new Error(`${what} failed after ${n} attempt(s): ${reason}`, { cause: error });
      }
      await new Promise((resolve) => setTimeout(resolve, limits.retryDelayMs));
    }
  }
}

/** Runs statements on one session outside any transaction block, under a short lock_timeout. */
async function onSession<T>(
  pool: Pool,
  lockTimeoutMs: number,
  work: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(`SELECT set_config('lock_timeout', $1, false)`, [String(lockTimeoutMs)]);
    return await work(client);
  } finally {
    await client.query('RESET lock_timeout').catch(() => undefined);
    client.release();
  }
}

/**
 * Creates partition `name` (in the table's schema) of `table` over [from, to) (null: MINVALUE /
 * MAXVALUE) as a plain table `LIKE` the parent, then attaches it: `ATTACH PARTITION` takes SHARE
 * UPDATE EXCLUSIVE on the parent, which writers do not wait for (`CREATE TABLE … PARTITION OF`
 * would take ACCESS EXCLUSIVE); the parent's indexes and row triggers are cloned onto it, and the
 * change-capture statement triggers added (migration 000012). One transaction, retried on a lock
 * timeout.
 */
export async function attachNewPartition(
  pool: Pool,
  table: string,
  name: string,
  bounds: { from: Date | null; to: Date | null },
  options: { limits: DdlLimits; signal?: AbortSignal },
): Promise<void> {
  const schema = table.split('.')[0] ?? 'public';
  const partition = `${ident(schema)}.${ident(name)}`;
  await withRetries(
    options.limits,
    `creating partition ${schema}.${name} of ${table}`,
    () =>
      onSession(pool, options.limits.lockTimeoutMs, async (client) => {
        await client.query('BEGIN');
        try {
          await client.query(
            `CREATE TABLE ${partition} (LIKE ${qualified(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING STORAGE)`,
          );
          // $1 table, $2 partition, $3 from, $4 to (null: MINVALUE / MAXVALUE), rendered as
          // literals by format() (ATTACH takes no parameters).
          const { rows } = await client.query<{ sql: string }>(
            `SELECT format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%s) TO (%s)', $1::text, $2::text,
                           coalesce(quote_literal($3::timestamptz), 'MINVALUE'), coalesce(quote_literal($4::timestamptz), 'MAXVALUE')) AS sql`,
            [qualified(table), partition, bounds.from, bounds.to],
          );
          await client.query(rows[0]?.sql ?? '');
          await client.query('SELECT aggjobs.capture_partitions($1::regclass)', [table]);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
      }),
    options.signal,
  );
}

export interface EnsuredPartitions {
  table: string;
  created: string[];
  /** Up to where inserts have a partition after this run (null: unbounded). */
  coveredUntil: string | null;
}

/**
 * Creates the partitions each time-partitioned table lacks up to `now + leadDays`, continuing its
 * newest partition's width from its newest upper bound (or one UTC day a partition from today's UTC
 * midnight when it has none), each by `attachNewPartition`. Tables not partitioned by a time range
 * are skipped; a table with a MAXVALUE or DEFAULT partition needs none.
 */
export async function ensureFuturePartitions(
  pool: Pool,
  tables: readonly string[],
  options: { leadDays: number; now?: Date; limits?: DdlLimits; signal?: AbortSignal },
): Promise<EnsuredPartitions[]> {
  const limits = options.limits ?? defaultDdlLimits;
  const results: EnsuredPartitions[] = [];
  for (const table of tables) {
    const info = await timePartitionsOf(pool, table);
    if (info === undefined) continue;
    // Partitions the application attached itself get the change-capture statement triggers here
    // too (migration 000012; a no-op for partitions that have them).
    await withRetries(
      limits,
      `installing change capture on the partitions of ${table}`,
      () =>
        onSession(pool, limits.lockTimeoutMs, (client) =>
          client.query('SELECT aggjobs.capture_partitions($1::regclass)', [table]),
        ),
      options.signal,
    );
    const now =
      options.now ?? (await pool.query<{ now: Date }>('SELECT now() AS now')).rows[0]?.now ?? new Date();
    const horizon = new Date(now.getTime() + options.leadDays * DAY_MS);
    const created: string[] = [];
    let end = coveredUntil(info);
    if (end === null) {
      results.push({ table, created, coveredUntil: null });
      continue;
    }
    const bounded = info.partitions.filter(
      (p): p is TimePartition & { from: Date; to: Date } => p.from !== null && p.to !== null,
    );
    let last =
      bounded.at(-1) ??
      (() => {
        const midnight = new Date(Math.floor(now.getTime() / DAY_MS) * DAY_MS);
        return { from: new Date(midnight.getTime() - DAY_MS), to: midnight };
      })();
    if (end === undefined) end = last.to;
    const schema = table.split('.')[0] ?? 'public';
    while (end.getTime() < horizon.getTime()) {
      const next = nextPartitionBounds(last);
      const name = partitionName(table, next.from);
      await attachNewPartition(pool, table, name, next, { limits, signal: options.signal });
      created.push(`${schema}.${name}`);
      last = next;
      end = next.to;
    }
    results.push({ table, created, coveredUntil: end.toISOString() });
  }
  return results;
}

export interface DroppedPartitions {
  table: string;
  /** Rows before it are gone: the start of the oldest partition kept. */
  watermark: string;
  dropped: string[];
}

/**
 * The partitions of `info` entirely before `cutoff` (their upper bound at or before it), oldest
 * first, and the watermark: the newest of their upper bounds, which is the start of the oldest
 * partition kept. None: nothing to drop.
 */
export function expiredPartitions(
  info: TimePartitionedTable,
  cutoff: Date,
): { partitions: TimePartition[]; watermark: Date } | undefined {
  const partitions = info.partitions.filter((p) => p.to !== null && p.to.getTime() <= cutoff.getTime());
  if (partitions.length === 0) return undefined;
  const watermark = new Date(Math.max(...partitions.map((p) => p.to?.getTime() ?? 0)));
  return { partitions, watermark };
}

/**
 * Detaches (`DETACH PARTITION … CONCURRENTLY`: SHARE UPDATE EXCLUSIVE on the parent, so writers
 * never wait) and drops each partition, a half-detached one first, then oldest first, each
 * statement under a short lock_timeout with retries. A partition left half-detached by an
 * interrupted detach is finished with `FINALIZE`. CONCURRENTLY cannot run in a transaction block,
 * so each statement is its own transaction.
 */
export async function detachAndDrop(
  pool: Pool,
  table: string,
  partitions: readonly TimePartition[],
  options: { limits?: DdlLimits; signal?: AbortSignal } = {},
): Promise<string[]> {
  const limits = options.limits ?? defaultDdlLimits;
  const dropped: string[] = [];
  // PostgreSQL allows one pending detach per parent: one left half-detached is finished first, or
  // every other detach would fail with "already pending detach".
  const ordered = [
    ...partitions.filter((p) => p.detachPending),
    ...partitions.filter((p) => !p.detachPending),
  ];
  for (const partition of ordered) {
    await withRetries(
      limits,
      `detaching partition ${partition.name} of ${table}`,
      () =>
        onSession(pool, limits.lockTimeoutMs, async (client) => {
          // $1 partition: still attached, and whether a detach of it was interrupted.
          const { rows } = await client.query<{ pending: boolean }>(
            'SELECT inhdetachpending AS pending FROM pg_inherits WHERE inhrelid = to_regclass($1) AND inhparent = to_regclass($2)',
            [partition.name, table],
          );
          const state = rows[0];
          if (state === undefined) return; // detached by an earlier attempt
          await client.query(
            `ALTER TABLE ${qualified(table)} DETACH PARTITION ${partition.name} ${state.pending ? 'FINALIZE' : 'CONCURRENTLY'}`,
          );
        }),
      options.signal,
    );
    await withRetries(
      limits,
      `dropping detached partition ${partition.name} of ${table}`,
      () =>
        onSession(pool, limits.lockTimeoutMs, (client) =>
          client.query(`DROP TABLE IF EXISTS ${partition.name}`),
        ),
      options.signal,
    );
    dropped.push(partition.name);
  }
  return dropped;
}

export interface PartitionCoverage {
  table: string;
  column: string;
  /** null: unbounded (MAXVALUE or DEFAULT partition); undefined: no bounded partition. */
  coveredUntil: string | null | undefined;
  /** Days of partitions ahead of now (negative: inserts of now already fail); null: unbounded or none. */
  daysAhead: number | null;
  partitions: number;
  detachPending: string[];
}

/** For the health check: how far ahead each time-partitioned table of `tables` has partitions. */
export async function partitionCoverage(
  db: Queryable,
  tables: readonly string[],
): Promise<PartitionCoverage[]> {
  const now = (await db.query<{ now: Date }>('SELECT now() AS now')).rows[0]?.now ?? new Date();
  const result: PartitionCoverage[] = [];
  for (const table of tables) {
    const info = await timePartitionsOf(db, table);
    if (info === undefined) continue;
    const end = coveredUntil(info);
    result.push({
      table,
      column: info.column,
      coveredUntil: end === null || end === undefined ? end : end.toISOString(),
      daysAhead:
        end === null || end === undefined
          ? null
          : Math.round(((end.getTime() - now.getTime()) / DAY_MS) * 100) / 100,
      partitions: info.partitions.length,
      detachPending: info.partitions.filter((p) => p.detachPending).map((p) => p.name),
    });
  }
  return result;
}
