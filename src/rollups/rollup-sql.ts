import type { RollupDefinition } from './definition.ts';
import { stateColumns } from './delta-state.ts';
import { bucketEndSql, bucketRowsStartSql, bucketStartSql } from './grain.ts';
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
  // A stateful rollup's state columns (delta-state.ts) are computed and written with its measures;
  // the writer's id among them is not compared (a window writes a row only when it differs).
  const state = stateColumns(def);
  const measures = [...def.measures.map((m) => ident(m.name)), ...state.map((c) => ident(c.name))];
  const compared = [
    ...def.measures.map((m) => ident(m.name)),
    ...state.filter((c) => c.compared).map((c) => ident(c.name)),
  ];
  const key = ['bucket_start', ...dims];
  const columns = [...key, ...measures].join(', ');
  const measureSelect = [
    ...def.measures.map((m) => `${m.sql} AS ${ident(m.name)}`),
    ...state.map((c) => `${c.sql} AS ${ident(c.name)}`),
  ].join(',\n    ');
  const setMeasures = [...measures, 'updated_at'].map((m) => `${m} = EXCLUDED.${m}`).join(', ');
  const differs = `(${compared.map((m) => `tgt.${m}`).join(', ')}) IS DISTINCT FROM (${compared
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
  const upsert = `INSERT INTO ${target} AS tgt (${[...key, ...measures].join(', ')}, updated_at)
  SELECT ${columns}, now() FROM computed WHERE aggjobs_stored
  ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${setMeasures}
  WHERE ${differs}
  RETURNING 1`;
  // fresh: the source rows written by transactions not visible in the previous snapshot, as they are
  // now. changed: their groups, and the groups of old rows logged (deleted or moved) since; minus
  // frozen buckets; `aggjobs_stored` when the rollup holds a row for the group.
  //
  // A changed group without a stored row had no source rows in the previous snapshot (the rollup
  // was exact then, and window refreshes and rebuilds since only added rows for groups with rows),
  // so every row it has now is fresh: it is aggregated from `fresh`, without reading the source
  // again. On a new hour that is every group, and the run costs one pass over the new rows, as the
  // plain GROUP BY of that hour does. A group with a stored row is recomputed from all its source
  // rows through the (dimension, time) index.
  //
  // So fresh holds the new rows already aggregated (read and sorted once, not once for the changed
  // keys and again for the aggregate), and the groups not stored are written by a plain INSERT (the
  // probe in changed found no row; a row committed since by another writer makes it fail, as the
  // upsert would in REPEATABLE READ), not by ON CONFLICT's speculative insertion; only stored groups
  // can be deleted. On a new hour at full size these took the statement from about 3× the plain
  // GROUP BY of the activity and credit rollups to about 2× (bench/report.md, Engine).
  const freshBucket = bucketStartSql(def.grain, time, zoneParam(2));
  const rowsStart = (bucket: string): string => bucketRowsStartSql(def.grain, bucket, zoneParam(2));
  const refreshChanged = `
WITH params AS (SELECT $1::xid8, $2::text, $3::text, $4::timestamptz, $5::pg_snapshot),
fresh AS MATERIALIZED (
  SELECT ${freshBucket} AS aggjobs_bucket, ${dims.join(', ')},
    ${measureSelect}
  FROM ${source}
  WHERE aggjobs_xid >= $1::xid8 AND NOT pg_visible_in_snapshot(aggjobs_xid, $5::pg_snapshot)
  GROUP BY 1, ${dims.map((_, i) => String(i + 2)).join(', ')}
), changed AS MATERIALIZED (
  SELECT g.bucket_start, ${rowsStart('g.bucket_start')} AS rows_start,
         ${rowsStart(bucketEndSql(def.grain, 'g.bucket_start', zoneParam(2)))} AS rows_end, ${dims.map((d) => `g.${d}`).join(', ')},
         t.aggjobs_stored IS NOT NULL AS aggjobs_stored
  FROM (
    SELECT aggjobs_bucket AS bucket_start, ${dims.join(', ')} FROM fresh
    UNION
    SELECT ${bucketStartSql(def.grain, `r.${time}`, zoneParam(2))}, ${dims.map((d) => `r.${d}`).join(', ')}
    FROM aggjobs.change_log l CROSS JOIN LATERAL jsonb_populate_record(NULL::${source}, l.old_row) r
    WHERE l.source_table = $3 AND l.xid >= $1::xid8 AND NOT pg_visible_in_snapshot(l.xid, $5::pg_snapshot)
  ) g
  -- One probe of the rollup's key per group, as a LATERAL join: an EXISTS here became a hash of the
  -- whole rollup table (a sequential scan of 760k rows, 1.4 s) once the source's statistics
  -- expected a new hour's 13k rows.
  LEFT JOIN LATERAL (
    SELECT true AS aggjobs_stored FROM ${target} t WHERE t.bucket_start = g.bucket_start AND ${dimMatch('t', 'g')} LIMIT 1
  ) t ON true
  WHERE ${rowsStart('g.bucket_start')} >= $4::timestamptz
), computed AS MATERIALIZED (
  SELECT c.bucket_start, ${dims.map((d) => `c.${d}`).join(', ')}, m.*, true AS aggjobs_stored
  FROM changed c
  CROSS JOIN LATERAL (
    SELECT
    ${measureSelect}
    FROM ${source} s
    WHERE ${dimMatch('s', 'c')} AND s.${time} >= c.rows_start AND s.${time} < c.rows_end
    HAVING count(*) > 0
  ) m
  WHERE c.aggjobs_stored
  UNION ALL
  SELECT f.*, false
  FROM fresh f
  WHERE ${rowsStart('f.aggjobs_bucket')} >= $4::timestamptz
    -- Groups changed found stored: one hashed SubPlan (an uncorrelated IN), not a second probe of
    -- the rollup's key per group, nor a join the planner cannot estimate (fresh is a guess).
    -- coalesce: a NULL key counts as not stored, and is refused by the INSERT, as before.
    AND NOT coalesce((f.aggjobs_bucket, ${dims.map((d) => `f.${d}`).join(', ')}) IN (SELECT ${key.join(', ')} FROM changed WHERE aggjobs_stored), false)
), written AS (
  ${upsert}
), inserted AS (
  INSERT INTO ${target} (${columns}, updated_at)
  SELECT ${columns}, now() FROM computed WHERE NOT aggjobs_stored
  RETURNING 1
), deleted AS (
  DELETE FROM ${target} t
  USING changed c
  WHERE c.aggjobs_stored AND t.bucket_start = c.bucket_start AND ${dimMatch('t', 'c')}
    AND NOT EXISTS (SELECT 1 FROM computed m WHERE m.bucket_start = c.bucket_start AND ${dimMatch('m', 'c')})
  RETURNING 1
)
SELECT (SELECT count(*) FROM changed) AS groups,
       (SELECT count(*) FROM written) + (SELECT count(*) FROM inserted) AS written,
       (SELECT count(*) FROM deleted) AS deleted`;

  const bs = (x: string): string => bucketStartSql(def.grain, x, zoneParam(3));
  const be = (x: string): string => bucketEndSql(def.grain, x, zoneParam(3));
  const rs = (x: string): string => bucketRowsStartSql(def.grain, x, zoneParam(3));
  const alignWindow = `
WITH params AS (SELECT $1::timestamptz, $2::timestamptz, $3::text, $4::timestamptz)
SELECT greatest(
         ${bs('$1::timestamptz')},
         CASE WHEN ${rs(bs('$4::timestamptz'))} >= $4::timestamptz THEN ${bs('$4::timestamptz')} ELSE ${be(bs('$4::timestamptz'))} END
       ) AS lo,
       CASE WHEN ${rs(bs('$2::timestamptz'))} = $2::timestamptz THEN ${bs('$2::timestamptz')} ELSE ${be(bs('$2::timestamptz'))} END AS hi`;

  // A window's groups are compared with the rows the window already holds in one join, and only the
  // groups that differ are written: a backfill over existing rows (the usual case: recomputing what
  // is already right) then costs the GROUP BY plus one scan of the rollup's rows in the window, not
  // an ON CONFLICT probe of that index per group. The upsert keeps its ON CONFLICT: the refresh's
  // advisory lock keeps other refreshes out, not other writers.
  //
  // Only the pairs that need a write are kept (`pending`: groups new or changed, stored rows left
  // without a group). It was every pair, materialized for the group count: on a month of executions
  // 643k rows and 91 MB of temporary file, written once and read twice, to write nothing. The count
  // of groups computed is the rows stored before, minus those left without a group, plus the new
  // groups. The rows stored before are counted in a CTE ahead of the writes: PostgreSQL runs every
  // part of the statement on one snapshot, but Citus (a window over distributed tables runs on the
  // coordinator) runs each CTE as a step of its own, in order, and the final SELECT after them all.
  const storedDims = def.dimensions.map((d) => ident(`aggjobs_stored_${d.column}`));
  const inWindow = (t: string): string =>
    `${t}.bucket_start >= $1::timestamptz AND ${t}.bucket_start < $2::timestamptz`;
  const refreshWindow = `
WITH params AS (SELECT $1::timestamptz, $2::timestamptz, $3::text),
stored AS MATERIALIZED (
  SELECT count(*) AS n FROM ${target} s WHERE ${inWindow('s')}
), computed AS (
  SELECT ${bs(time)} AS bucket_start, ${dims.join(', ')},
    ${measureSelect}
  FROM ${source}
  WHERE ${time} >= ${rs('$1::timestamptz')} AND ${time} < ${rs('$2::timestamptz')}
  GROUP BY 1, ${dims.map((_, i) => String(i + 2)).join(', ')}
), pending AS MATERIALIZED (
  SELECT c.*, t.bucket_start AS aggjobs_stored_bucket_start, ${dims.map((d, i) => `t.${d} AS ${storedDims[i] ?? ''}`).join(', ')},
         c.bucket_start IS NOT NULL AS aggjobs_computed, t.bucket_start IS NULL AS aggjobs_new
  FROM computed c
  FULL JOIN (SELECT * FROM ${target} s WHERE ${inWindow('s')}) t
    ON t.bucket_start = c.bucket_start AND ${dimMatch('t', 'c')}
  WHERE c.bucket_start IS NULL OR t.bucket_start IS NULL
     OR (${compared.map((m) => `t.${m}`).join(', ')}) IS DISTINCT FROM (${compared.map((m) => `c.${m}`).join(', ')})
), written AS (
  INSERT INTO ${target} AS tgt (${[...key, ...measures].join(', ')}, updated_at)
  SELECT ${[...key, ...measures].join(', ')}, now() FROM pending WHERE aggjobs_computed
  ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${setMeasures}
  WHERE ${differs}
  RETURNING 1
), deleted AS (
  DELETE FROM ${target} t
  USING pending p
  WHERE ${inWindow('t')}
    AND NOT p.aggjobs_computed AND t.bucket_start = p.aggjobs_stored_bucket_start
    AND ${dims.map((d, i) => `t.${d} = p.${storedDims[i] ?? ''}`).join(' AND ')}
  RETURNING 1
)
SELECT (SELECT n FROM stored)
         - (SELECT count(*) FROM pending WHERE NOT aggjobs_computed)
         + (SELECT count(*) FROM pending WHERE aggjobs_new) AS groups,
       (SELECT count(*) FROM written) AS written, (SELECT count(*) FROM deleted) AS deleted`;

  return { createTable, refreshChanged, alignWindow, refreshWindow };
}
