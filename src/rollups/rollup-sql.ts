import type { RollupDefinition } from './definition.ts';
import { bucketEndSql, bucketStartSql } from './grain.ts';
import { ident, qualified } from './sql-identifier.ts';

// Statements start with an unused \`params\` CTE that names every parameter with its type, so that
// a grain whose SQL does not need the time zone still takes the same parameter list.

/**
 * The SQL of one rollup, derived from its definition. Identifiers come from the definition and are
 * quoted here once; every value is a parameter. Incremental and window refreshes share the measure
 * expressions, so both compute the same rows.
 */
export interface RollupSql {
  createTable: string;
  /**
   * $1 xmin of the previous snapshot, $2 time zone, $3 source table name, $4 retention cutoff,
   * $5 the previous snapshot. Recomputes every changed group in one statement: upserts the rows
   * that differ, deletes the groups left without source rows. Returns groups, written, deleted.
   */
  refreshChanged: string;
  /** $1 start, $2 end, $3 time zone, $4 retention cutoff: the window widened to whole, unfrozen buckets. */
  alignWindow: string;
  /** $1 lo, $2 hi (aligned), $3 time zone: recomputes every group of the window, as refreshChanged. */
  refreshWindow: string;
}

export function rollupSql(def: RollupDefinition): RollupSql {
  const target = `analytics.${ident(def.name)}`;
  const source = qualified(def.source);
  const time = ident(def.timeColumn);
  const dims = def.dimensions.map((d) => ident(d.column));
  const measures = def.measures.map((m) => ident(m.name));
  const key = ['bucket_start', ...dims];
  const measureSelect = def.measures.map((m) => `${m.sql} AS ${ident(m.name)}`).join(',\n    ');
  const setMeasures = [...measures, 'updated_at'].map((m) => `${m} = EXCLUDED.${m}`).join(', ');
  const differs = `(${measures.map((m) => `tgt.${m}`).join(', ')}) IS DISTINCT FROM (${measures
    .map((m) => `EXCLUDED.${m}`)
    .join(', ')})`;
  const dimMatch = (a: string, b: string): string => dims.map((d) => `${a}.${d} = ${b}.${d}`).join(' AND ');
  const zoneParam = (n: number): string => `$${n}::text`;

  const createTable = `
CREATE TABLE IF NOT EXISTS ${target} (
  bucket_start timestamptz NOT NULL,
  ${def.dimensions.map((d) => `${ident(d.column)} ${d.type} NOT NULL,`).join('\n  ')}
  ${def.measures.map((m) => `${ident(m.name)} ${m.type},`).join('\n  ')}
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (${key.join(', ')})
)`;

  // Groups of rows written, and of old rows logged (deleted or moved), by transactions not visible
  // in the previous snapshot; minus frozen buckets.
  const changedStart = bucketStartSql(def.grain, `changed_rows.${time}`, zoneParam(2));
  const upsert = `INSERT INTO ${target} AS tgt (${[...key, ...measures].join(', ')}, updated_at)
  SELECT *, now() FROM computed
  ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${setMeasures}
  WHERE ${differs}
  RETURNING 1`;
  const refreshChanged = `
WITH params AS (SELECT $1::xid8, $2::text, $3::text, $4::timestamptz, $5::pg_snapshot),
changed AS MATERIALIZED (
  SELECT g.bucket_start, ${bucketEndSql(def.grain, 'g.bucket_start', zoneParam(2))} AS bucket_end, ${dims.map((d) => `g.${d}`).join(', ')}
  FROM (
    SELECT DISTINCT ${changedStart} AS bucket_start, ${dims.map((d) => `changed_rows.${d}`).join(', ')}
    FROM (
      SELECT ${time}, ${dims.join(', ')} FROM ${source}
      WHERE aggjobs_xid >= $1::xid8 AND NOT pg_visible_in_snapshot(aggjobs_xid, $5::pg_snapshot)
      UNION ALL
      SELECT r.${time}, ${dims.map((d) => `r.${d}`).join(', ')}
      FROM aggjobs.change_log l CROSS JOIN LATERAL jsonb_populate_record(NULL::${source}, l.old_row) r
      WHERE l.source_table = $3 AND l.xid >= $1::xid8 AND NOT pg_visible_in_snapshot(l.xid, $5::pg_snapshot)
    ) changed_rows
  ) g
  WHERE g.bucket_start >= $4::timestamptz
), computed AS MATERIALIZED (
  SELECT c.bucket_start, ${dims.map((d) => `c.${d}`).join(', ')}, m.*
  FROM changed c
  CROSS JOIN LATERAL (
    SELECT
    ${measureSelect}
    FROM ${source} s
    WHERE ${dimMatch('s', 'c')} AND s.${time} >= c.bucket_start AND s.${time} < c.bucket_end
    HAVING count(*) > 0
  ) m
), written AS (
  ${upsert}
), deleted AS (
  DELETE FROM ${target} t
  USING changed c
  WHERE t.bucket_start = c.bucket_start AND ${dimMatch('t', 'c')}
    AND NOT EXISTS (SELECT 1 FROM computed m WHERE m.bucket_start = c.bucket_start AND ${dimMatch('m', 'c')})
  RETURNING 1
)
SELECT (SELECT count(*) FROM changed) AS groups, (SELECT count(*) FROM written) AS written,
       (SELECT count(*) FROM deleted) AS deleted`;

  const bs = (x: string): string => bucketStartSql(def.grain, x, zoneParam(3));
  const be = (x: string): string => bucketEndSql(def.grain, x, zoneParam(3));
  const alignWindow = `
WITH params AS (SELECT $1::timestamptz, $2::timestamptz, $3::text, $4::timestamptz)
SELECT greatest(
         ${bs('$1::timestamptz')},
         CASE WHEN ${bs('$4::timestamptz')} >= $4::timestamptz THEN ${bs('$4::timestamptz')} ELSE ${be(bs('$4::timestamptz'))} END
       ) AS lo,
       CASE WHEN ${bs('$2::timestamptz')} = $2::timestamptz THEN $2::timestamptz ELSE ${be(bs('$2::timestamptz'))} END AS hi`;

  const refreshWindow = `
WITH params AS (SELECT $1::timestamptz, $2::timestamptz, $3::text),
computed AS MATERIALIZED (
  SELECT ${bs(time)} AS bucket_start, ${dims.join(', ')},
    ${measureSelect}
  FROM ${source}
  WHERE ${time} >= $1::timestamptz AND ${time} < $2::timestamptz
  GROUP BY 1, ${dims.map((_, i) => String(i + 2)).join(', ')}
), written AS (
  ${upsert}
), deleted AS (
  DELETE FROM ${target} t
  WHERE t.bucket_start >= $1::timestamptz AND t.bucket_start < $2::timestamptz
    AND NOT EXISTS (SELECT 1 FROM computed m WHERE m.bucket_start = t.bucket_start AND ${dimMatch('m', 't')})
  RETURNING 1
)
SELECT (SELECT count(*) FROM computed) AS groups, (SELECT count(*) FROM written) AS written,
       (SELECT count(*) FROM deleted) AS deleted`;

  return { createTable, refreshChanged, alignWindow, refreshWindow };
}
