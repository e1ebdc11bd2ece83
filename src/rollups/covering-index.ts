import { createHash } from 'node:crypto';
import { withTransaction, type Pool } from '../db/index.ts';
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

async function isPartitioned(pool: Pool, table: string): Promise<boolean> {
  // $1 table
  const { rows } = await pool.query<{ partitioned: boolean }>(
    `SELECT relkind = 'p' AS partitioned FROM pg_class WHERE oid = to_regclass($1)`,
    [table],
  );
  return rows[0]?.partitioned === true;
}

/**
 * A partitioned source: CREATE INDEX CONCURRENTLY is refused on a partitioned table, so the index is
 * made on the parent alone (`ON ONLY`, invalid while partitions lack theirs), built concurrently on
 * each leaf partition, and attached to it; once every partition's is attached the parent's is valid.
 * Partitions attached later get theirs from the parent (ATTACH PARTITION builds it on the new,
 * empty table). A partition's index left unattached (invalid) by a failed build is dropped and
 * built again.
 */
async function buildOnPartitions(pool: Pool, plan: CoveringIndex, columns: string): Promise<void> {
  const schema = plan.source.split('.')[0] ?? 'public';
  const parent = `${ident(schema)}.${ident(plan.name)}`;
  await pool.query(
    `CREATE INDEX IF NOT EXISTS ${ident(plan.name)} ON ONLY ${qualified(plan.source)} ${columns}`,
  );
  // $1 source, $2 parent index: each leaf partition, its schema, and its index attached to the
  // parent's (if any).
  const { rows: partitions } = await pool.query<{
    partition: string;
    schema: string;
    oid: number;
    attached: string | null;
  }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS partition, n.nspname AS schema, c.oid::int AS oid,
            (SELECT format('%I.%I', n.nspname, ic.relname) FROM pg_inherits ii
               JOIN pg_class ic ON ic.oid = ii.inhrelid JOIN pg_index x ON x.indexrelid = ic.oid
              WHERE ii.inhparent = to_regclass($2) AND x.indrelid = c.oid) AS attached
     FROM pg_partition_tree(to_regclass($1)) t
     JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE t.isleaf`,
    [plan.source, `${schema}.${plan.name}`],
  );
  for (const p of partitions) {
    if (p.attached !== null) continue;
    // Named after the parent's index and the partition's oid: unique, and within 63 bytes.
    const name = `${plan.name}_${p.oid}`;
    const index = `${ident(p.schema)}.${ident(name)}`;
    await pool.query(`DROP INDEX CONCURRENTLY IF EXISTS ${index}`);
    await pool.query(`CREATE INDEX CONCURRENTLY ${ident(name)} ON ${p.partition} ${columns}`);
    await pool.query(`ALTER INDEX ${parent} ATTACH PARTITION ${index}`);
  }
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
    const columns = `(${plan.key.map(ident).join(', ')})${
      plan.include.length > 0 ? ` INCLUDE (${plan.include.map(ident).join(', ')})` : ''
    }`;
    if (await isPartitioned(pool, plan.source)) {
      await buildOnPartitions(pool, plan, columns);
      created.push(plan.name);
      continue;
    }
    if (rows[0] !== undefined) await pool.query(`DROP INDEX CONCURRENTLY IF EXISTS ${index}`);
    await pool.query(`CREATE INDEX CONCURRENTLY ${ident(plan.name)} ON ${qualified(plan.source)} ${columns}`);
    created.push(plan.name);
  }
  for (const source of new Set(definitions.map((d) => d.source))) {
    // $1 source table, $2 the engine's infix
    const { rows } = await pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
       WHERE i.indrelid = $1::regclass AND strpos(c.relname, $2) > 0`,
      [source, COVER_INFIX],
    );
    const partitioned = await isPartitioned(pool, source);
    for (const { name } of rows) {
      if (wanted.has(name)) continue;
      // PostgreSQL cannot drop a partitioned index concurrently: a plain DROP (ACCESS EXCLUSIVE on
      // the parent for a catalog change), waiting at most 5 s for its lock.
      if (partitioned)
        await withTransaction(
          pool,
          (client) => client.query(`DROP INDEX IF EXISTS ${ident(schemaOf(source))}.${ident(name)}`),
          { settings: { lock_timeout: '5s' } },
        );
      else await pool.query(`DROP INDEX CONCURRENTLY IF EXISTS ${ident(schemaOf(source))}.${ident(name)}`);
      dropped.push(name);
    }
  }
  return { created, dropped };
}
