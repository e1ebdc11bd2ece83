import { escapeIdentifier as quote } from 'pg';
import type { Queryable } from '../../db/index.ts';
import type { RollupDefinition } from '../../rollups/index.ts';

export interface SeriesPoint {
  bucket: Date;
  values: Record<string, number>;
}

/**
 * Measures that may be summed across rows of a bucket (several workspaces or event types): counts
 * and sums. Distinct counts and percentiles are not additive and are left out.
 */
export function additiveMeasures(def: RollupDefinition): string[] {
  return def.measures
    .filter((m) => /^\s*(count|sum)\s*\(/i.test(m.sql) && !/distinct/i.test(m.sql))
    .map((m) => m.name);
}

export function hasWorkspace(def: RollupDefinition): boolean {
  return def.dimensions.some((d) => d.column === 'workspace_id');
}

/**
 * A rollup's additive measures per bucket in [from, to), summed over every row of the bucket or
 * over one workspace's. At most 1,000 buckets.
 */
export async function rollupSeries(
  db: Queryable,
  def: RollupDefinition,
  options: { from: Date; to: Date; workspaceId: number | undefined },
): Promise<SeriesPoint[]> {
  const measures = additiveMeasures(def);
  const sums = measures.map((m) => `coalesce(sum(${quote(m)}), 0)::float8 AS ${quote(m)}`).join(', ');
  const workspace = hasWorkspace(def)
    ? 'AND ($3::bigint IS NULL OR workspace_id = $3)'
    : 'AND $3::bigint IS NULL';
  // $1 from, $2 to, $3 workspace id or NULL for all
  const { rows } = await db.query<Record<string, number> & { bucket_start: Date }>(
    `SELECT bucket_start${sums === '' ? '' : `, ${sums}`}
     FROM analytics.${quote(def.name)}
     WHERE bucket_start >= $1 AND bucket_start < $2 ${workspace}
     GROUP BY bucket_start ORDER BY bucket_start LIMIT 1000`,
    [options.from, options.to, options.workspaceId ?? null],
  );
  return rows.map((r) => ({
    bucket: r.bucket_start,
    values: Object.fromEntries(measures.map((m) => [m, Number(r[m] ?? 0)])),
  }));
}

/** Workspaces that have rollup rows (for the chart's selector). */
export async function knownWorkspaces(db: Queryable): Promise<Array<{ id: number; name: string }>> {
  const { rows } = await db.query<{ id: string; name: string }>(
    'SELECT id, name FROM public.workspaces ORDER BY id LIMIT 500',
  );
  return rows.map((r) => ({ id: Number(r.id), name: r.name }));
}
