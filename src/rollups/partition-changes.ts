import type { Queryable } from '../db/index.ts';

/**
 * Partitions attached to or detached from a rollup's source between two refreshes (migration
 * 000015). Neither fires a trigger, so change capture cannot see their rows: an attached partition
 * may hold rows whose `aggjobs_xid` the stored snapshot already sees (written into a staging table
 * before it, or NULL: written before aggjobs), and a detached (or dropped) one takes its rows away.
 * The refresh recomputes each such partition's range as a window refresh would.
 */

/** A leaf partition of the source, as `aggjobs.rollup_state.source_partitions` records it. */
export interface SourcePartition {
  oid: string;
  /** Schema-qualified, quoted where needed. */
  name: string;
  /** Range bounds as ISO text; null: MINVALUE / MAXVALUE, DEFAULT, or not a time range. */
  from: string | null;
  to: string | null;
}

export interface PartitionChange {
  partition: string;
  change: 'attached' | 'detached';
  start: string;
  end: string;
}

/**
 * A select-list item over `aggjobs.rollup_state s`: the source's leaf partitions now (an empty
 * list for a plain table). The bounds are printed and read back in the same statement, so in the
 * same zone.
 */
export const sourcePartitionsSelect = `(SELECT coalesce(jsonb_agg(jsonb_build_object(
          'oid', c.oid::bigint::text, 'name', format('%I.%I', n.nspname, c.relname),
          'from', (regexp_match(b.bound, 'FROM \\(''([^'']*)''\\)'))[1]::timestamptz,
          'to', (regexp_match(b.bound, 'TO \\(''([^'']*)''\\)'))[1]::timestamptz) ORDER BY c.oid), '[]'::jsonb)
        FROM pg_partition_tree(to_regclass(s.source_table)) t
        JOIN pg_class c ON c.oid = t.relid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
        WHERE t.isleaf AND t.level > 0) AS source_partitions_now`;

/**
 * The ranges to recompute: each partition attached since `recorded` that holds a row the stored
 * snapshot sees (or an unstamped one), and each partition gone since whose range is not frozen
 * (retention detaches only partitions wholly before its watermark, `cutoff`). Nothing when no
 * list was recorded yet (a state row from before migration 000015).
 */
export async function partitionChanges(
  db: Queryable,
  recorded: readonly SourcePartition[] | null,
  current: readonly SourcePartition[],
  storedSnapshot: string,
  cutoff: Date | null,
): Promise<PartitionChange[]> {
  if (recorded === null) return [];
  const known = new Set(recorded.map((p) => p.oid));
  const now = new Set(current.map((p) => p.oid));
  const range = (p: SourcePartition): { start: string; end: string } => ({
    start: p.from ?? '-infinity',
    end: p.to ?? 'infinity',
  });
  const changes: PartitionChange[] = [];
  for (const p of current.filter((c) => !known.has(c.oid))) {
    // $1 stored snapshot. The xmax bound lets the partition's aggjobs_xid index answer.
    const { rows } = await db.query<{ missed: boolean }>(
      `SELECT EXISTS (SELECT FROM ${p.name}
                      WHERE aggjobs_xid IS NULL
                         OR (aggjobs_xid < pg_snapshot_xmax($1::pg_snapshot)
                             AND pg_visible_in_snapshot(aggjobs_xid, $1::pg_snapshot))) AS missed`,
      [storedSnapshot],
    );
    if (rows[0]?.missed === true) changes.push({ partition: p.name, change: 'attached', ...range(p) });
  }
  for (const p of recorded.filter((r) => !now.has(r.oid))) {
    if (cutoff !== null && p.to !== null && new Date(p.to).getTime() <= cutoff.getTime()) continue;
    changes.push({ partition: p.name, change: 'detached', ...range(p) });
  }
  return changes;
}
