import type { Queryable } from '../db/index.ts';
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
}

/** What `aggjobs.rollup_state.source_partitions` holds. */
export interface RecordedPartitions {
  key: string;
  partitions: SourcePartition[];
}

export interface PartitionChange {
  partition: string;
  change: 'attached' | 'detached';
  start: string;
  end: string;
}

/** The key of the partitions of `table` (an SQL expression naming the source): '' for a plain table. */
export const partitionKeySql = (table: string): string => `(SELECT coalesce(string_agg(
          i.inhrelid::text || ':' || i.xmin::text, ',' ORDER BY i.inhrelid), '')
        FROM pg_partition_tree(to_regclass(${table})) t JOIN pg_inherits i ON i.inhrelid = t.relid
        WHERE t.level > 0)`;

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
            ${partitionKeySql('$1')} AS key
     FROM pg_partition_tree(to_regclass($1)) t
     JOIN pg_inherits i ON i.inhrelid = t.relid
     JOIN pg_class c ON c.oid = t.relid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     JOIN pg_partitioned_table p ON p.partrelid = i.inhparent
     CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
     CROSS JOIN LATERAL (SELECT p.partstrat = 'r' AND p.partnatts = 1 AND b.bound <> 'DEFAULT'
                                AND p.partattrs[0] = (SELECT a.attnum FROM pg_attribute a
                                                      WHERE a.attrelid = i.inhparent AND a.attname = $2) AS keyed) k
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
 * detaches only partitions wholly before its watermark, `cutoff`).
 */
export async function partitionChanges(
  db: Queryable,
  recorded: readonly SourcePartition[],
  current: readonly SourcePartition[],
  storedSnapshot: string,
  cutoff: Date | null,
): Promise<PartitionChange[]> {
  const id = (p: SourcePartition): string => `${p.oid}:${p.attached}`;
  const before = new Set(recorded.map(id));
  const now = new Set(current.map(id));
  const knownOids = new Set(recorded.map((p) => p.oid));
  const range = (p: SourcePartition): { start: string; end: string } => ({
    start: p.from ?? '-infinity',
    end: p.to ?? 'infinity',
  });
  const changes: PartitionChange[] = [];
  for (const p of current.filter((c) => !before.has(id(c)))) {
    if (!knownOids.has(p.oid)) {
      // $1 stored snapshot (a scan of the partition, once, when it first appears)
      const { rows } = await db.query<{ missed: boolean }>(
        `SELECT EXISTS (SELECT FROM ${p.name}
                        WHERE aggjobs_xid IS NULL OR pg_visible_in_snapshot(aggjobs_xid, $1::pg_snapshot)) AS missed`,
        [storedSnapshot],
      );
      if (rows[0]?.missed !== true) continue;
    }
    changes.push({ partition: p.name, change: 'attached', ...range(p) });
  }
  for (const p of recorded.filter((r) => !now.has(id(r)))) {
    if (cutoff !== null && p.to !== null && new Date(p.to).getTime() <= cutoff.getTime()) continue;
    changes.push({ partition: p.name, change: 'detached', ...range(p) });
  }
  return changes;
}
