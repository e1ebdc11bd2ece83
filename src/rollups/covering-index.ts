import { createHash } from 'node:crypto';
import type { Pool } from '../db/index.ts';
import type { RollupDefinition } from './definition.ts';
import { ident, qualified } from './sql-identifier.ts';

/**
 * The covering index of a source (docs/covering-index.md): keyed as an incremental refresh reads one
 * group, (first dimension, time column), and including every other column the opted-in rollups of
 * that source read (their other dimensions and the columns of their measures), so that the recompute
 * of a group is an index-only scan of adjacent index pages instead of a heap visit per row.
 */
export interface CoveringIndex {
  /** Schema-qualified source table. */
  source: string;
  /** `<table>_aggjobs_cover_<hash of key and included columns>`: a changed column set is a new index. */
  name: string;
  key: string[];
  include: string[];
}

/** Every covering index of the engine is named with this infix; others' indexes are never touched. */
const COVER_INFIX = '_aggjobs_cover_';

/**
 * The source columns the measures of `def` read, asked of PostgreSQL (measures are free SQL): the
 * columns a temporary view of them depends on (pg_depend of its rewrite rule). The view lives in a
 * transaction that is rolled back.
 */
async function measureColumns(pool: Pool, def: RollupDefinition): Promise<string[]> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(
      `CREATE TEMP VIEW aggjobs_measure_columns AS SELECT ${def.measures
        .map((m, i) => `${m.sql} AS m${i}`)
        .join(', ')} FROM ${qualified(def.source)}`,
    );
    // $1 source table
    const { rows } = await client.query<{ column: string }>(
      `SELECT DISTINCT a.attname AS column
       FROM pg_rewrite r
       JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
       JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
       WHERE r.ev_class = 'aggjobs_measure_columns'::regclass AND d.refobjid = $1::regclass
         AND d.refobjsubid > 0
       ORDER BY 1`,
      [def.source],
    );
    return rows.map((r) => r.column);
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
}

const coverKey = (def: RollupDefinition): string[] => [def.dimensions[0]?.column ?? '', def.timeColumn];

/**
 * Rejects rollups of one source that ask for a covering index keyed differently (one index per
 * source), naming the rollup and both keys. Run before anything is installed.
 */
export function checkCoveringIndexKeys(definitions: readonly RollupDefinition[]): void {
  const keys = new Map<string, string[]>();
  for (const def of definitions) {
    if (def.coveringIndex !== true) continue;
    const key = coverKey(def);
    const other = keys.get(def.source) ?? key;
    if (other.join() !== key.join())
      throw new Error(
        `rollup ${def.name}: coveringIndex needs the same first dimension and time column as the ` +
          `other rollups of ${def.source} that ask for one (${other.join(', ')}), got ${key.join(', ')}`,
      );
    keys.set(def.source, key);
  }
}

/** The covering index each source needs for its rollups with `coveringIndex: true`. */
export async function planCoveringIndexes(
  pool: Pool,
  definitions: readonly RollupDefinition[],
): Promise<CoveringIndex[]> {
  checkCoveringIndexKeys(definitions);
  const bySource = new Map<string, { key: string[]; include: Set<string> }>();
  for (const def of definitions) {
    if (def.coveringIndex !== true) continue;
    const plan = bySource.get(def.source) ?? { key: coverKey(def), include: new Set<string>() };
    for (const d of def.dimensions.slice(1)) plan.include.add(d.column);
    for (const c of await measureColumns(pool, def)) plan.include.add(c);
    bySource.set(def.source, plan);
  }
  return [...bySource].map(([source, plan]) => {
    const include = [...plan.include].filter((c) => !plan.key.includes(c)).sort();
    const hash = createHash('sha256')
      .update(JSON.stringify([plan.key, include]))
      .digest('hex')
      .slice(0, 8);
    const table = source.split('.')[1] ?? source;
    return { source, name: `${table}${COVER_INFIX}${hash}`, key: plan.key, include };
  });
}

export interface CoveringIndexChanges {
  created: string[];
  dropped: string[];
}

/**
 * Creates the covering indexes the definitions ask for and drops the engine's covering indexes of
 * their sources that no definition asks for any more (a measure that reads another column makes a new
 * index; the old one goes once the new one is valid). CREATE/DROP INDEX CONCURRENTLY: writers of the
 * source never wait on the build, which takes minutes on a 10M-row table; so this runs outside any
 * transaction. An invalid index left by a failed build is dropped and built again.
 */
export async function installCoveringIndexes(
  pool: Pool,
  definitions: readonly RollupDefinition[],
): Promise<CoveringIndexChanges> {
  const plans = await planCoveringIndexes(pool, definitions);
  const wanted = new Set(plans.map((p) => p.name));
  const created: string[] = [];
  const dropped: string[] = [];
  const schemaOf = (source: string): string => source.split('.')[0] ?? 'public';
  for (const plan of plans) {
    // $1 schema, $2 index name
    const { rows } = await pool.query<{ valid: boolean }>(
      `SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
      [schemaOf(plan.source), plan.name],
    );
    const index = `${ident(schemaOf(plan.source))}.${ident(plan.name)}`;
    if (rows[0]?.valid === true) continue;
    if (rows[0] !== undefined) await pool.query(`DROP INDEX CONCURRENTLY IF EXISTS ${index}`);
    await pool.query(
      `CREATE INDEX CONCURRENTLY ${ident(plan.name)} ON ${qualified(plan.source)} (${plan.key
        .map(ident)
        .join(', ')})${plan.include.length > 0 ? ` INCLUDE (${plan.include.map(ident).join(', ')})` : ''}`,
    );
    created.push(plan.name);
  }
  for (const source of new Set(definitions.map((d) => d.source))) {
    // $1 source table, $2 the engine's infix
    const { rows } = await pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
       WHERE i.indrelid = $1::regclass AND strpos(c.relname, $2) > 0`,
      [source, COVER_INFIX],
    );
    for (const { name } of rows) {
      if (wanted.has(name)) continue;
      await pool.query(`DROP INDEX CONCURRENTLY IF EXISTS ${ident(schemaOf(source))}.${ident(name)}`);
      dropped.push(name);
    }
  }
  return { created, dropped };
}
