import type { Measure, RollupDefinition } from './definition.ts';
import { bucketEndSql, bucketRowsStartSql, bucketStartSql } from './grain.ts';
import type { Queryable } from '../db/index.ts';
import { ident, qualified } from './sql-identifier.ts';

/**
 * Per-group state (opt-in, `deltaState: true`; docs/delta-state.md). Beside each row the rollup
 * keeps what its measures need to take a changed source row in or out without reading the group's
 * other rows: the number of rows, the non-NULL count of each summed column, and each column that a
 * max, min, percentile or distinct count reads as a sorted array. A refresh then applies the rows
 * written since the stored snapshot (in) and the logged old versions that snapshot counted (out).
 *
 * Which rows hold state as of the stored snapshot: those written by the transaction that stored it
 * (`rollup_state.snapshot_xid`) or by one the snapshot sees. A window refresh (a backfill, a
 * rebuild) computes its rows from its own, later snapshot: the changes between the two are in its
 * rows already, so the next incremental run recomputes such a group from its rows instead of
 * applying them again (`aggjobs_state_xid`, the writer of each row).
 */

const COLUMN = '([a-z_][a-z0-9_]*)';

/** One measure of a stateful rollup: how it moves when rows come in and go out. */
export type StateMeasure =
  | { kind: 'count'; measure: Measure; filter: string | null }
  | { kind: 'sum'; measure: Measure; column: string; cast: string }
  | { kind: 'max' | 'min'; measure: Measure; column: string }
  | { kind: 'percentile_cont' | 'percentile_disc'; measure: Measure; column: string; fraction: number }
  | { kind: 'distinct'; measure: Measure; column: string };

export const stateMeasureForms =
  'count(*), count(*) FILTER (WHERE …), sum(column) (an optional ::type after it), max(column), min(column), ' +
  'percentile_cont(f) or percentile_disc(f) WITHIN GROUP (ORDER BY column), count(DISTINCT column)';

/** The measure's form, or null when the state cannot keep it exactly. */
export function stateMeasure(measure: Measure): StateMeasure | null {
  const sql = measure.sql.trim().replace(/\s+/g, ' ');
  if (/^count\( ?\* ?\)$/i.test(sql)) return { kind: 'count', measure, filter: null };
  const filtered = /^count\( ?\* ?\) filter ?\( ?where (.+)\)$/i.exec(sql);
  // One FILTER whose condition closes where the measure ends: `count(*) FILTER (WHERE a) +
  // count(*) FILTER (WHERE b)` matches the pattern too, and is not one count.
  if (filtered?.[1] !== undefined && balanced(filtered[1]))
    return { kind: 'count', measure, filter: filtered[1] };
  const sum = new RegExp(
    `^sum\\( ?${COLUMN} ?\\)((?: ?:: ?[a-z][a-z0-9_ ]*(?:\\([0-9, ]+\\))?)?)$`,
    'i',
  ).exec(sql);
  if (sum?.[1] !== undefined) return { kind: 'sum', measure, column: sum[1], cast: sum[2] ?? '' };
  const extreme = new RegExp(`^(max|min)\\( ?${COLUMN} ?\\)$`, 'i').exec(sql);
  if (extreme?.[1] !== undefined && extreme[2] !== undefined)
    return { kind: extreme[1].toLowerCase() as 'max' | 'min', measure, column: extreme[2] };
  const percentile = new RegExp(
    `^(percentile_cont|percentile_disc)\\( ?([01](?:\\.[0-9]+)?|\\.[0-9]+) ?\\) within group ?\\( ?order by ${COLUMN} ?\\)$`,
    'i',
  ).exec(sql);
  if (percentile?.[1] !== undefined && percentile[2] !== undefined && percentile[3] !== undefined) {
    const fraction = Number(percentile[2]);
    if (fraction >= 0 && fraction <= 1)
      return {
        kind: percentile[1].toLowerCase() as 'percentile_cont' | 'percentile_disc',
        measure,
        column: percentile[3],
        fraction,
      };
  }
  const distinct = new RegExp(`^count\\( ?distinct ${COLUMN} ?\\)$`, 'i').exec(sql);
  if (distinct?.[1] !== undefined) return { kind: 'distinct', measure, column: distinct[1] };
  return null;
}

/** Parentheses outside '…' and "…" never close more than they opened, and all close. */
function balanced(sql: string): boolean {
  let depth = 0;
  let quote: string | null = null;
  for (const ch of sql) {
    if (quote !== null) {
      if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === '(') depth += 1;
    else if (ch === ')') {
      depth -= 1;
      if (depth < 0) return false;
    }
  }
  return depth === 0 && quote === null;
}

export interface StatePlan {
  measures: StateMeasure[];
  /** Columns summed: their non-NULL count is kept (a sum of no value is NULL). */
  summed: string[];
  /** Columns kept as sorted arrays. */
  sorted: string[];
}

/** The plan of a stateful rollup; throws naming the measure and the rule when one is not supported. */
export function statePlan(def: RollupDefinition): StatePlan {
  const measures = def.measures.map((m) => {
    const planned = stateMeasure(m);
    if (planned === null)
      throw new Error(
        `rollup ${JSON.stringify(def.name)}: measures[].sql of ${m.name} must be one of ${stateMeasureForms} ` +
          `when deltaState is on, got ${JSON.stringify(m.sql)}`,
      );
    return planned;
  });
  const summed = [...new Set(measures.flatMap((m) => (m.kind === 'sum' ? [m.column] : [])))];
  const sorted = [
    ...new Set(measures.flatMap((m) => (m.kind === 'count' || m.kind === 'sum' ? [] : [m.column]))),
  ];
  return { measures, summed, sorted };
}

/** A column of the state: its name in the rollup table and how a GROUP BY computes it. */
export interface StateColumn {
  name: string;
  sql: string;
  /** The SQL type, or the source column whose type, as an array, it takes. */
  type: string | { arrayOf: string };
  /** Compared to tell whether a window's row changed (not the writer's id). */
  compared: boolean;
}

/**
 * Rows in and out above which a group is recomputed rather than applied: each one copies the
 * group's arrays (a bulk update of a busy hour would cost rows × changes).
 */
const maxMoves = 256;

export const stateRowsColumn = 'aggjobs_state_rows';
export const stateXidColumn = 'aggjobs_state_xid';
const countColumn = (column: string): string => `aggjobs_state_count_${column}`;
const sumColumn = (column: string): string => `aggjobs_state_sum_${column}`;
const valuesColumn = (column: string): string => `aggjobs_state_values_${column}`;

/** The state columns of a rollup: none unless it opts in. */
export function stateColumns(def: RollupDefinition): StateColumn[] {
  if (def.deltaState !== true) return [];
  const plan = statePlan(def);
  return [
    { name: stateRowsColumn, sql: 'count(*)', type: 'bigint', compared: true },
    ...plan.summed.flatMap((c) => [
      { name: countColumn(c), sql: `count(${ident(c)})`, type: 'bigint', compared: true },
      // The exact sum: a measure may round it (`sum(x)::numeric(12,2)`), its deltas must not.
      { name: sumColumn(c), sql: `sum(${ident(c)})::numeric`, type: 'numeric', compared: true },
    ]),
    ...plan.sorted.map((c) => ({
      name: valuesColumn(c),
      sql: `array_agg(${ident(c)} ORDER BY ${ident(c)}) FILTER (WHERE ${ident(c)} IS NOT NULL)`,
      type: { arrayOf: c },
      compared: true,
    })),
    { name: stateXidColumn, sql: 'pg_current_xact_id()', type: 'xid8', compared: false },
  ];
}

/** The new value of a measure read from its column's applied array `a` (result, distinct_delta). */
function fromSorted(m: StateMeasure, a: string): string {
  const name = ident(m.measure.name);
  switch (m.kind) {
    case 'max':
      return `${a}.result[cardinality(${a}.result)]`;
    case 'min':
      return `${a}.result[1]`;
    case 'percentile_cont':
      return `aggjobs.sorted_percentile_cont(${a}.result, ${m.fraction}::double precision)`;
    case 'percentile_disc':
      return `aggjobs.sorted_percentile_disc(${a}.result, ${m.fraction}::double precision)`;
    case 'distinct':
      return `t.${name} + ${a}.distinct_delta`;
    default:
      throw new Error(`measure ${m.measure.name} is not read from a sorted array`);
  }
}

/**
 * $1 xmin of the previous snapshot, $2 time zone, $3 source table name, $4 retention cutoff,
 * $5 the previous snapshot, $6 the transaction that stored it. One statement, as refreshChanged
 * (rollup-sql.ts), returning groups, written, deleted. Each changed group is
 * - applied: stored, with state as of the previous snapshot, and every logged old row of it whole:
 *   its counts and sums move by the deltas, its arrays take the rows in and out; deleted when no
 *   row is left;
 * - recomputed from its source rows (with its state), as refreshChanged does, when stored
 *   otherwise (state written by a window since, or old rows logged before the rollup kept state);
 * - aggregated from the new rows when not stored (then all its rows are new, rollup-sql.ts).
 */
export function refreshByDeltaSql(def: RollupDefinition): string {
  const plan = statePlan(def);
  const state = stateColumns(def);
  const target = `analytics.${ident(def.name)}`;
  const source = qualified(def.source);
  const time = ident(def.timeColumn);
  const dims = def.dimensions.map((d) => ident(d.column));
  const key = ['bucket_start', ...dims];
  const zone = '$2::text';
  const groupBy = `GROUP BY 1, ${dims.map((_, i) => String(i + 2)).join(', ')}`;
  const dimMatch = (a: string, b: string): string => dims.map((d) => `${a}.${d} = ${b}.${d}`).join(' AND ');
  const columns = [...def.measures.map((m) => ident(m.name)), ...state.map((c) => ident(c.name))];
  const compared = [
    ...def.measures.map((m) => ident(m.name)),
    ...state.filter((c) => c.compared).map((c) => ident(c.name)),
  ];
  const select = [
    ...def.measures.map((m) => `${m.sql} AS ${ident(m.name)}`),
    ...state.map((c) => `${c.sql} AS ${ident(c.name)}`),
  ].join(',\n    ');
  const rowsStart = (bucket: string): string => bucketRowsStartSql(def.grain, bucket, zone);

  const deltas = [
    // Each count's delta over the change rows (`aggjobs_sign`: +1 in, -1 out, 0 never counted).
    ...plan.measures.flatMap((m, i) =>
      m.kind === 'count'
        ? [
            `coalesce(sum(aggjobs_sign)${m.filter === null ? '' : ` FILTER (WHERE ${m.filter})`}, 0) AS aggjobs_d_${i}`,
          ]
        : [],
    ),
    ...plan.summed.flatMap((c) => [
      `coalesce(sum(aggjobs_sign) FILTER (WHERE ${ident(c)} IS NOT NULL), 0) AS ${ident(`aggjobs_dn_${c}`)}`,
      `coalesce(sum(aggjobs_sign * ${ident(c)}::numeric), 0) AS ${ident(`aggjobs_ds_${c}`)}`,
    ]),
    ...plan.sorted.flatMap((c) => [
      `array_agg(${ident(c)}) FILTER (WHERE aggjobs_sign < 0 AND ${ident(c)} IS NOT NULL) AS ${ident(`aggjobs_out_${c}`)}`,
      `array_agg(${ident(c)}) FILTER (WHERE aggjobs_sign > 0 AND ${ident(c)} IS NOT NULL) AS ${ident(`aggjobs_in_${c}`)}`,
    ]),
  ];
  const sets = [
    `${stateRowsColumn} = t.${stateRowsColumn} + ch.aggjobs_d_rows`,
    `${stateXidColumn} = pg_current_xact_id()`,
    'updated_at = now()',
    ...plan.measures.flatMap((m, i) => {
      const name = ident(m.measure.name);
      if (m.kind === 'count') return [`${name} = t.${name} + ch.aggjobs_d_${i}`];
      if (m.kind === 'sum') {
        // The measure's own cast applied to the new exact sum, as the GROUP BY applies it to sum().
        const n = `t.${ident(countColumn(m.column))} + ch.${ident(`aggjobs_dn_${m.column}`)}`;
        const exact = `coalesce(t.${ident(sumColumn(m.column))}, 0) + ch.${ident(`aggjobs_ds_${m.column}`)}`;
        return [`${name} = CASE WHEN ${n} = 0 THEN NULL ELSE (${exact})${m.cast} END`];
      }
      return [];
    }),
    ...plan.summed.flatMap((c) => {
      const n = `t.${ident(countColumn(c))} + ch.${ident(`aggjobs_dn_${c}`)}`;
      return [
        `${ident(countColumn(c))} = ${n}`,
        `${ident(sumColumn(c))} = CASE WHEN ${n} = 0 THEN NULL ELSE coalesce(t.${ident(sumColumn(c))}, 0) + ch.${ident(`aggjobs_ds_${c}`)} END`,
      ];
    }),
    // One sub-select per array, computed once (OFFSET 0: a flattened sub-select computes a value
    // once per mention; docs/delta-state.md), giving the array and the measures read from it.
    ...plan.sorted.map((c) => {
      const readers = plan.measures.filter((m) => m.kind !== 'count' && m.kind !== 'sum' && m.column === c);
      const targets = [ident(valuesColumn(c)), ...readers.map((m) => ident(m.measure.name))];
      const values = ['a.result', ...readers.map((m) => fromSorted(m, 'a'))];
      return `(${targets.join(', ')}) = (SELECT ${values.join(', ')} FROM (
        SELECT * FROM aggjobs.multiset_apply(t.${ident(valuesColumn(c))}, ch.${ident(`aggjobs_out_${c}`)}, ch.${ident(`aggjobs_in_${c}`)}) OFFSET 0) a)`;
    }),
  ];

  return `
WITH params AS (SELECT $1::xid8, $2::text, $3::text, $4::timestamptz, $5::pg_snapshot, $6::xid8, $7::boolean),
fresh_rows AS MATERIALIZED (
  SELECT * FROM ${source}
  WHERE aggjobs_xid >= $1::xid8 AND NOT pg_visible_in_snapshot(aggjobs_xid, $5::pg_snapshot)
), changes AS MATERIALIZED (
  -- rows in (+1): as they are now; rows out (-1): the logged old versions the previous snapshot
  -- counted. A version written and replaced since was never counted (0): it moves no state, but its
  -- group is changed all the same, since a row a window wrote since may hold it (the property test
  -- found that: such a row kept a version moved away). An entry logged without the whole row (by
  -- log_old_groups, before the source's capture kept whole rows) has its group recomputed.
  SELECT 1 AS aggjobs_sign, true AS aggjobs_full, f.* FROM fresh_rows f
  UNION ALL
  SELECT CASE WHEN r.aggjobs_xid IS NULL OR pg_visible_in_snapshot(r.aggjobs_xid, $5::pg_snapshot) THEN -1 ELSE 0 END,
         l.old_row ? 'aggjobs_xid', r.*
  FROM aggjobs.change_log l CROSS JOIN LATERAL jsonb_populate_record(NULL::${source}, l.old_row) r
  WHERE l.source_table = $3 AND l.xid >= $1::xid8 AND NOT pg_visible_in_snapshot(l.xid, $5::pg_snapshot)
), delta AS MATERIALIZED (
  SELECT ${bucketStartSql(def.grain, time, zone)} AS bucket_start, ${dims.join(', ')},
    bool_and(aggjobs_full) AS aggjobs_full, sum(aggjobs_sign) AS aggjobs_d_rows,
    count(*) FILTER (WHERE aggjobs_sign <> 0) AS aggjobs_moves,
    ${deltas.join(',\n    ')}
  FROM changes
  ${groupBy}
), changed AS MATERIALIZED (
  SELECT d.*, ${rowsStart('d.bucket_start')} AS rows_start,
         ${rowsStart(bucketEndSql(def.grain, 'd.bucket_start', zone))} AS rows_end,
         t.aggjobs_stored IS NOT NULL AS aggjobs_stored,
         coalesce($7::boolean AND d.aggjobs_full AND d.aggjobs_moves <= ${maxMoves}
                  AND t.${stateRowsColumn} + d.aggjobs_d_rows >= 0
                  AND (t.${stateXidColumn} = $6::xid8 OR pg_visible_in_snapshot(t.${stateXidColumn}, $5::pg_snapshot)), false) AS aggjobs_apply
  FROM delta d
  LEFT JOIN LATERAL (
    SELECT true AS aggjobs_stored, t.${stateRowsColumn}, t.${stateXidColumn}
    FROM ${target} t WHERE t.bucket_start = d.bucket_start AND ${dimMatch('t', 'd')} LIMIT 1
  ) t ON true
  WHERE ${rowsStart('d.bucket_start')} >= $4::timestamptz
), computed AS MATERIALIZED (
  SELECT c.bucket_start, ${dims.map((d) => `c.${d}`).join(', ')}, m.*, true AS aggjobs_stored
  FROM changed c
  CROSS JOIN LATERAL (
    SELECT
    ${select}
    FROM ${source} s
    WHERE ${dimMatch('s', 'c')} AND s.${time} >= c.rows_start AND s.${time} < c.rows_end
    HAVING count(*) > 0
  ) m
  WHERE c.aggjobs_stored AND NOT c.aggjobs_apply
  UNION ALL
  SELECT f.*, false
  FROM (
    SELECT ${bucketStartSql(def.grain, time, zone)} AS bucket_start, ${dims.join(', ')},
    ${select}
    FROM fresh_rows
    ${groupBy}
  ) f
  -- Every fresh group is in changed unless frozen: those not stored, as refreshChanged picks them
  -- (one hashed SubPlan; coalesce: a NULL dimension counts as not stored and reaches the INSERT,
  -- which refuses it, instead of being left out).
  WHERE ${bucketRowsStartSql(def.grain, 'f.bucket_start', zone)} >= $4::timestamptz
    AND NOT coalesce((${key.map((k) => `f.${k}`).join(', ')}) IN (SELECT ${key.join(', ')} FROM changed WHERE aggjobs_stored), false)
), written AS (
  INSERT INTO ${target} AS tgt (${[...key, ...columns].join(', ')}, updated_at)
  SELECT ${[...key, ...columns].join(', ')}, now() FROM computed WHERE aggjobs_stored
  ON CONFLICT (${key.join(', ')}) DO UPDATE SET ${[...columns, 'updated_at'].map((c) => `${c} = EXCLUDED.${c}`).join(', ')}
  WHERE (${compared.map((c) => `tgt.${c}`).join(', ')}) IS DISTINCT FROM (${compared.map((c) => `EXCLUDED.${c}`).join(', ')})
  RETURNING 1
), inserted AS (
  INSERT INTO ${target} (${[...key, ...columns].join(', ')}, updated_at)
  SELECT ${[...key, ...columns].join(', ')}, now() FROM computed WHERE NOT aggjobs_stored
  RETURNING 1
), deleted AS (
  DELETE FROM ${target} t
  USING changed c
  WHERE c.aggjobs_stored AND NOT c.aggjobs_apply AND t.bucket_start = c.bucket_start AND ${dimMatch('t', 'c')}
    AND NOT EXISTS (SELECT 1 FROM computed m WHERE m.bucket_start = c.bucket_start AND ${dimMatch('m', 'c')})
  RETURNING 1
), applied AS (
  UPDATE ${target} t SET
    ${sets.join(',\n    ')}
  FROM changed ch
  WHERE ch.aggjobs_apply AND t.${stateRowsColumn} + ch.aggjobs_d_rows > 0
    AND t.bucket_start = ch.bucket_start AND ${dimMatch('t', 'ch')}
  RETURNING 1
), emptied AS (
  DELETE FROM ${target} t
  USING changed ch
  WHERE ch.aggjobs_apply AND t.${stateRowsColumn} + ch.aggjobs_d_rows = 0
    AND t.bucket_start = ch.bucket_start AND ${dimMatch('t', 'ch')}
  RETURNING 1
)
SELECT (SELECT count(*) FROM changed) AS groups,
       (SELECT count(*) FROM written) + (SELECT count(*) FROM inserted) + (SELECT count(*) FROM applied) AS written,
       (SELECT count(*) FROM deleted) + (SELECT count(*) FROM emptied) AS deleted,
       (SELECT count(*) FROM changed WHERE aggjobs_apply) AS applied`;
}

const exactSumTypes = ['smallint', 'integer', 'bigint', 'numeric'];
const numericTypes = [...exactSumTypes, 'real', 'double precision'];

/**
 * Adds a stateful rollup's state columns to its table (an existing table gets them NULL: such rows
 * are recomputed when next touched, and the fingerprint asks for a rebuild). The arrays take their
 * source column's type; a summed column must be an integer or numeric (a float's sum moved by
 * deltas is not the sum recomputed).
 */
export async function installStateColumns(db: Queryable, def: RollupDefinition): Promise<void> {
  const columns = stateColumns(def);
  if (columns.length === 0) return;
  const plan = statePlan(def);
  // $1 source, $2 columns
  const { rows } = await db.query<{ name: string; type: string; base: string; collatable: boolean }>(
    `SELECT a.attname AS name, format_type(a.atttypid, NULL) AS type,
            format_type(coalesce(nullif(t.typbasetype, 0), a.atttypid), NULL) AS base, t.typcollation <> 0 AS collatable
     FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
     WHERE a.attrelid = to_regclass($1) AND a.attname = ANY ($2::text[]) AND NOT a.attisdropped`,
    [def.source, [...plan.summed, ...plan.sorted]],
  );
  const types = new Map(rows.map((r) => [r.name, r]));
  for (const c of [...plan.summed, ...plan.sorted])
    if (!types.has(c))
      throw new Error(
        `rollup ${JSON.stringify(def.name)}: a measure reads ${c}, which is not a column of ${def.source}`,
      );
  for (const c of plan.summed) {
    const base = types.get(c)?.base ?? '';
    if (!exactSumTypes.includes(base))
      throw new Error(
        `rollup ${JSON.stringify(def.name)}: a summed column must be of type ${exactSumTypes.join(', ')} ` +
          `when deltaState is on (a sum moved by deltas must equal the sum recomputed), got ${def.source}.${c} of type ${base}`,
      );
  }
  // The arrays are sorted by array_agg's ORDER BY and searched by width_bucket: for a collatable
  // type the two could compare under different collations, and a search that misses a value would
  // miscount silently. Refused rather than risked.
  // percentile_cont interpolates in double precision: its column must cast to it, as the aggregate's does.
  for (const m of plan.measures)
    if (m.kind === 'percentile_cont' && !numericTypes.includes(types.get(m.column)?.base ?? ''))
      throw new Error(
        `rollup ${JSON.stringify(def.name)}: the column of percentile_cont in ${m.measure.name} must be of type ` +
          `${numericTypes.join(', ')} when deltaState is on, got ${def.source}.${m.column} of type ${types.get(m.column)?.base ?? '?'}`,
      );
  for (const c of plan.sorted)
    if (types.get(c)?.collatable === true)
      throw new Error(
        `rollup ${JSON.stringify(def.name)}: a column read by max, min, a percentile or count(DISTINCT) must not be ` +
          `of a collatable type (text, varchar) when deltaState is on, got ${def.source}.${c} of type ${types.get(c)?.type ?? '?'}`,
      );
  // Only what is missing: ALTER TABLE takes a lock that readers of the rollup would queue behind,
  // and an install runs at every start.
  // $1 rollup
  const { rows: present } = await db.query<{ columns: string[]; fillfactor: boolean }>(
    `SELECT coalesce((SELECT array_agg(attname::text) FROM pg_attribute
                      WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped), '{}') AS columns,
            coalesce('fillfactor=70' = ANY (c.reloptions), false) AS fillfactor
     FROM pg_class c WHERE c.oid = to_regclass(format('analytics.%I', $1::text))`,
    [def.name],
  );
  const have = new Set(present[0]?.columns ?? []);
  const changes = columns
    .filter((c) => !have.has(c.name))
    .map((c) => {
      const type = typeof c.type === 'string' ? c.type : `${types.get(c.type.arrayOf)?.type ?? 'unknown'}[]`;
      return `ADD COLUMN ${ident(c.name)} ${type}`;
    });
  // Room on each page for the row's next version: an applied refresh rewrites the touched rows in
  // place (HOT, no new index entry) instead of moving them (bench/report.md, per-group state).
  if (present[0]?.fillfactor !== true) changes.push('SET (fillfactor = 70)');
  if (changes.length > 0) await db.query(`ALTER TABLE analytics.${ident(def.name)} ${changes.join(', ')}`);
}

/** Adds the state columns a rollup's definition needs and drops those it no longer does (a rebuild). */
export async function syncStateColumns(db: Queryable, def: RollupDefinition): Promise<void> {
  const wanted = new Set(stateColumns(def).map((c) => c.name));
  // An array whose type is no longer its source column's (the column's type was changed since) is
  // dropped and added again: the rebuild fills it.
  // $1 rollup, $2 source
  const { rows } = await db.query<{ name: string; stale: boolean }>(
    `SELECT a.attname AS name,
            coalesce(format_type(a.atttypid, NULL) <> (SELECT format_type(s.atttypid, NULL) || '[]' FROM pg_attribute s
                       WHERE s.attrelid = to_regclass($2) AND 'aggjobs_state_values_' || s.attname = a.attname
                         AND NOT s.attisdropped), false) AS stale
     FROM pg_attribute a
     WHERE a.attrelid = to_regclass(format('analytics.%I', $1::text)) AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname LIKE 'aggjobs\\_state\\_%'`,
    [def.name, def.source],
  );
  const unused = rows.filter((r) => !wanted.has(r.name) || r.stale);
  if (unused.length > 0)
    await db.query(
      `ALTER TABLE analytics.${ident(def.name)} ${unused.map((r) => `DROP COLUMN ${ident(r.name)}`).join(', ')}`,
    );
  await installStateColumns(db, def);
}
