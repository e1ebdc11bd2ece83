import type { Pool, PoolClient, Queryable } from '../db/index.ts';
import type { RollupDefinition } from './definition.ts';

/**
 * Partitions attached to or detached from a rollup's source between two refreshes (migration
 * 000015). Neither fires a trigger, so change capture cannot see their rows: an attached partition
 * may hold rows whose `aggjobs_xid` the stored snapshot already sees (written into a staging table
 * before it, or NULL: written before aggjobs), and a detached (or dropped) one takes its rows away;
 * one detached, changed and attached again is both. The refresh recomputes each such partition's
 * range as a window refresh would.
 *
 * Every refresh compares a cheap key (each partition's oid and the xmin of its pg_inherits row,
 * which every ATTACH writes anew); only when it differs are the leaves and their bounds read.
 *
 * A partition the application creates or attaches itself has the row triggers, which PostgreSQL
 * clones from the parent, but not the statement triggers that log deletes, moves and truncations
 * (migration 000012: aggjobs puts them on each partition it knows of). Until it has them, a
 * statement that names it goes unlogged, so every refresh recomputes its range; the refresh then
 * puts them on (`capturePartitions`), and the next run recomputes its range once more, for what
 * changed between the two. The key holds each partition's triggers (the xmin of their rows), so
 * that next run sees them arrive.
 */

/** A leaf partition of the source, as `aggjobs.rollup_state.source_partitions` records it. */
export interface SourcePartition {
  oid: string;
  /** xmin of the partition's pg_inherits row: a new one on every ATTACH. */
  attached: string;
  /** Schema-qualified, quoted where needed. */
  name: string;
  /** Range bounds on the time column as ISO text; null: unbounded, DEFAULT, or keyed otherwise. */
  from: string | null;
  to: string | null;
  /**
   * The xmins of its change-capture statement triggers, joined by '/'; null when it lacks one
   * that the source has. Absent in records from before 2026-12-01 (taken as captured).
   */
  captured?: string | null;
}

/** What `aggjobs.rollup_state.source_partitions` holds. */
export interface RecordedPartitions {
  key: string;
  partitions: SourcePartition[];
}

export interface PartitionChange {
  partition: string;
  /** uncaptured: it lacks the statement triggers; captured: it got them since the last run. */
  change: 'attached' | 'detached' | 'uncaptured' | 'captured';
  start: string;
  end: string;
}

const captureTriggers = `('aggjobs_log_deletes', 'aggjobs_log_moves', 'aggjobs_log_truncate')`;

/**
 * A LATERAL subquery: `captured` of partition `rel` of source `root` (SQL expressions): the
 * triggers of `rel` and of each level between it and the root (a statement that names a middle
 * level fires only that level's triggers, migration 000016); '-' where one of them lacks one of the
 * source's statement triggers or has it disabled (a trigger enabled for replication only, 'R', does
 * not fire for the application's statements either).
 */
const capturedSql = (rel: string, root: string): string => `SELECT CASE
          WHEN count(x.*) = (SELECT count(*) FROM pg_trigger r WHERE r.tgrelid = ${root} AND r.tgname IN ${captureTriggers})
                            * (SELECT count(*) FROM pg_partition_ancestors(${rel}) l WHERE l.relid <> ${root})
          THEN coalesce(string_agg(x.xmin::text, '/' ORDER BY x.tgrelid, x.tgname), '') ELSE '-' END AS captured
        FROM pg_partition_ancestors(${rel}) a
        JOIN pg_trigger x ON x.tgrelid = a.relid AND x.tgname IN ${captureTriggers} AND x.tgenabled IN ('O', 'A')
        WHERE a.relid <> ${root}`;

/** The key of the partitions of `table` (an SQL expression naming the source): '' for a plain table. */
export const partitionKeySql = (table: string): string => `(SELECT coalesce(string_agg(
          i.inhrelid::text || ':' || i.xmin::text || ':' || c.captured, ',' ORDER BY i.inhrelid), '')
        FROM pg_partition_tree(to_regclass(${table})) t JOIN pg_inherits i ON i.inhrelid = t.relid
        CROSS JOIN LATERAL (${capturedSql('i.inhrelid', `to_regclass(${table})`)}) c
        WHERE t.level > 0)`;

/**
 * Whether this run must read the partitions: their key changed, or one lacked the statement
 * triggers at the last run (recomputed by every run until it has them).
 */
export function partitionsToRead(recorded: RecordedPartitions | null, key: string): boolean {
  return recorded?.key !== key || recorded.partitions.some((p) => p.captured === null);
}

/**
 * The source's leaf partitions with their bounds, and the key. A bound is read only where the
 * partition's parent is range-partitioned on the time column alone; elsewhere it is null (the
 * whole range is recomputed). `pg_get_expr` prints bounds in the session's DateStyle: ISO is set
 * first, so that the offset is numeric and the text reads back as the same instant.
 */
export async function readSourcePartitions(
  db: Queryable,
  def: RollupDefinition,
): Promise<RecordedPartitions> {
  await db.query("SELECT set_config('DateStyle', 'ISO, YMD', true)");
  // $1 source, $2 time column
  const { rows } = await db.query<SourcePartition & { key: string }>(
    `SELECT c.oid::text AS oid, i.xmin::text AS attached, format('%I.%I', n.nspname, c.relname) AS name,
            to_json(CASE WHEN k.keyed THEN (regexp_match(b.bound, 'FROM \\(''([^'']*)''\\)'))[1]::timestamptz END) #>> '{}' AS "from",
            to_json(CASE WHEN k.keyed THEN (regexp_match(b.bound, 'TO \\(''([^'']*)''\\)'))[1]::timestamptz END) #>> '{}' AS "to",
            nullif(cap.captured, '-') AS captured, ${partitionKeySql('$1')} AS key
     FROM pg_partition_tree(to_regclass($1)) t
     JOIN pg_inherits i ON i.inhrelid = t.relid
     JOIN pg_class c ON c.oid = t.relid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     JOIN pg_partitioned_table p ON p.partrelid = i.inhparent
     CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
     CROSS JOIN LATERAL (SELECT p.partstrat = 'r' AND p.partnatts = 1 AND b.bound <> 'DEFAULT'
                                AND p.partattrs[0] = (SELECT a.attnum FROM pg_attribute a
                                                      WHERE a.attrelid = i.inhparent AND a.attname = $2) AS keyed) k
     CROSS JOIN LATERAL (${capturedSql('c.oid', 'to_regclass($1)')}) cap
     WHERE t.isleaf AND t.level > 0
     ORDER BY c.oid`,
    [def.source, def.timeColumn],
  );
  const key = rows[0]?.key ?? '';
  return { key, partitions: rows.map(({ key: _key, ...p }) => p) };
}

/**
 * The ranges to recompute: each partition attached since `recorded` — always when it is one
 * attached again (same oid), else when it holds a row the stored snapshot sees or an unstamped one
 * — and each partition gone (or attached again) since, whose range is not frozen (retention
 * detaches only partitions wholly before its watermark, `cutoff`). And each partition without the
 * statement triggers, and each that got them since the last run (or, new, after its attach).
 */
export async function partitionChanges(
  db: Queryable,
  recorded: readonly SourcePartition[],
  current: readonly SourcePartition[],
  storedSnapshot: string,
  cutoff: Date | null,
): Promise<PartitionChange[]> {
  const id = (p: SourcePartition): string => `${p.oid}:${p.attached}`;
  const now = new Set(current.map(id));
  const knownOids = new Set(recorded.map((p) => p.oid));
  const range = (p: SourcePartition): { start: string; end: string } => ({
    start: p.from ?? '-infinity',
    end: p.to ?? 'infinity',
  });
  const recordedById = new Map(recorded.map((r) => [id(r), r]));
  const changes: PartitionChange[] = [];
  for (const p of current) {
    const known = recordedById.get(id(p));
    let attached = false;
    if (known === undefined && knownOids.has(p.oid)) attached = true;
    else if (known === undefined) {
      // $1 stored snapshot (a scan of the partition, once, when it first appears)
      const { rows } = await db.query<{ missed: boolean }>(
        `SELECT EXISTS (SELECT FROM ${p.name}
                        WHERE aggjobs_xid IS NULL OR pg_visible_in_snapshot(aggjobs_xid, $1::pg_snapshot)) AS missed`,
        [storedSnapshot],
      );
      attached = rows[0]?.missed === true;
    }
    // Got its triggers after its attach (new: the application attached it, aggjobs attaches with
    // them in one transaction), or they changed since the last run (put on, or disabled and enabled
    // again): what changed before them may not have been logged.
    const triggers = p.captured === undefined || p.captured === null ? [] : p.captured.split('/');
    const capturedLate =
      known === undefined
        ? triggers.some((x) => x !== '' && x !== p.attached)
        : known.captured !== undefined && known.captured !== p.captured;
    if (attached) changes.push({ partition: p.name, change: 'attached', ...range(p) });
    else if (p.captured === null) changes.push({ partition: p.name, change: 'uncaptured', ...range(p) });
    else if (capturedLate) changes.push({ partition: p.name, change: 'captured', ...range(p) });
  }
  for (const p of recorded.filter((r) => !now.has(id(r)))) {
    if (cutoff !== null && p.to !== null && new Date(p.to).getTime() <= cutoff.getTime()) continue;
    changes.push({ partition: p.name, change: 'detached', ...range(p) });
  }
  return changes;
}

/**
 * Puts the statement triggers on `partitions` of `source`, which lack them (migration 000012's
 * `aggjobs.capture_partitions`), in a transaction of its own. CREATE TRIGGER waits for the
 * partition's writers and writers queue behind it meanwhile, so the partitions are locked first
 * under a 100 ms lock timeout: a writer waits at most that long, and only behind a transaction
 * that holds the partition longer. Returns how many triggers it created, or why it could not (the
 * refresh then recomputes those partitions again next run).
 */
export async function capturePartitions(
  pool: Pool,
  source: string,
  partitions: readonly string[],
): Promise<number | string> {
  let client: PoolClient | undefined;
  try {
    client = await pool.connect();
    await client.query('BEGIN');
    await client.query("SELECT set_config('lock_timeout', '100', true)");
    // Names as format('%I.%I') wrote them, read from the catalog.
    await client.query(`LOCK TABLE ${partitions.join(', ')} IN SHARE ROW EXCLUSIVE MODE`);
    const { rows } = await client.query<{ made: number }>(
      'SELECT aggjobs.capture_partitions($1::regclass) AS made',
      [source],
    );
    await client.query('COMMIT');
    const made = rows[0]?.made ?? 0;
    // It creates none where a trigger of that name is there, disabled (by the application).
    if (made === 0)
      return `the change-capture triggers of ${partitions.join(', ')} are disabled: ALTER TABLE … ENABLE TRIGGER`;
    return made;
  } catch (error) {
    await client?.query('ROLLBACK').catch(() => undefined);
    return error instanceof Error ? error.message : String(error);
  } finally {
    client?.release();
  }
}
