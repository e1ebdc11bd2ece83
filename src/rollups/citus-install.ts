import type { Queryable } from '../db/index.ts';
import { groupColumnsBySource, type RollupDefinition } from './definition.ts';
import { citusChangeCaptureSql } from './citus-capture.ts';
import { ident, qualified } from './sql-identifier.ts';

/**
 * Installing on a Citus coordinator (docs/scaling.md "Distributed PostgreSQL").
 *
 * Every source table and every rollup table is distributed by `workspace_id` in one co-location
 * group, so each (bucket, workspace, …) group has its source rows and its rollup row on the same
 * shard: a `GROUP BY` that includes the distribution column is pushed down whole to each shard,
 * which is what keeps percentiles and distinct counts exact. The job tables (`aggjobs.*`) stay local
 * tables on the coordinator.
 *
 * Change capture is installed per node once the tables are distributed (citus-capture.ts): a
 * single-server install's triggers are dropped before distributing, and Citus's own triggers put
 * on each shard.
 */

export const DISTRIBUTION_COLUMN = 'workspace_id';

/** Is this database a Citus coordinator (or worker): the citus extension is installed in it. */
export async function citusInstalled(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ installed: boolean }>(
    "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') AS installed",
  );
  return rows[0]?.installed === true;
}

/** A rollup whose groups would span shards cannot be recomputed where its rows are: refused on Citus. */
export function checkCitusDefinition(def: RollupDefinition): void {
  if (def.dimensions.some((d) => d.column === DISTRIBUTION_COLUMN)) return;
  throw new Error(
    `rollup ${JSON.stringify(def.name)} cannot be installed on Citus: its dimensions ` +
      `(${def.dimensions.map((d) => d.column).join(', ')}) do not include ${DISTRIBUTION_COLUMN}, the column ` +
      `the source and rollup tables are distributed by, so one of its groups would gather rows from ` +
      `several shards and its exact measures (percentiles, distinct counts) could not be computed ` +
      `where the rows are; add ${DISTRIBUTION_COLUMN} to its dimensions`,
  );
}

interface Placement {
  method: string | null;
  column: string | null;
  colocation: number | null;
}

// $1 table (schema.name). method: 'h' hash-distributed, 'n' reference/local in metadata, null: a
// plain local table; column: the distribution column.
const PLACEMENT_SQL = `
SELECT p.partmethod::text AS method, column_to_column_name(p.logicalrelid, p.partkey) AS column,
       p.colocationid AS colocation
FROM pg_dist_partition p WHERE p.logicalrelid = to_regclass($1)`;

async function placementOf(db: Queryable, table: string): Promise<Placement> {
  const { rows } = await db.query<Placement>(PLACEMENT_SQL, [table]);
  return rows[0] ?? { method: null, column: null, colocation: null };
}

/**
 * The source's primary key must include the distribution column (Citus enforces uniqueness per
 * shard only). A key without it, on a table not yet distributed, is widened here to
 * (workspace_id, <its columns>): `id` stays unique in practice (a sequence) but is no longer
 * enforced alone. Refused when a foreign key references the key, which a widened key would break.
 */
async function widenPrimaryKey(db: Queryable, table: string): Promise<void> {
  const { rows } = await db.query<{ name: string; columns: string[]; referenced: boolean }>(
    `SELECT c.conname AS name,
            array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n)
                  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.n) AS columns,
            EXISTS (SELECT FROM pg_constraint f WHERE f.contype = 'f' AND f.confrelid = c.conrelid) AS referenced
     FROM pg_constraint c WHERE c.conrelid = to_regclass($1) AND c.contype = 'p'`,
    [table],
  );
  const key = rows[0];
  if (key === undefined || key.columns.includes(DISTRIBUTION_COLUMN)) return;
  const widened = [DISTRIBUTION_COLUMN, ...key.columns].map(ident).join(', ');
  if (key.referenced)
    throw new Error(
      `cannot distribute ${table} on Citus: its primary key (${key.columns.join(', ')}) does not include ` +
        `${DISTRIBUTION_COLUMN} and foreign keys reference it; Citus enforces keys per shard, so the key ` +
        `must become (${DISTRIBUTION_COLUMN}, ${key.columns.join(', ')}) and the referencing foreign keys ` +
        `include ${DISTRIBUTION_COLUMN}: change them, then run aggjobs migrate again`,
    );
  await db.query(
    `ALTER TABLE ${qualified(table)} DROP CONSTRAINT ${ident(key.name)}, ADD PRIMARY KEY (${widened})`,
  );
}

/** Change capture installed by a single-server install of the same database: meaningless on Citus. */
async function dropChangeCapture(db: Queryable, table: string): Promise<void> {
  const t = qualified(table);
  for (const trigger of [
    'aggjobs_stamp_xid',
    'aggjobs_log_deletes',
    'aggjobs_log_moves',
    'aggjobs_log_truncate',
    'aggjobs_log_replicated',
  ])
    await db.query(`DROP TRIGGER IF EXISTS ${ident(trigger)} ON ${t}`);
  const { rows } = await db.query<{ stamped: boolean }>(
    `SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'aggjobs_xid'
                    AND NOT attisdropped) AS stamped`,
    [table],
  );
  if (rows[0]?.stamped === true) await db.query(`ALTER TABLE ${t} ALTER COLUMN aggjobs_xid DROP DEFAULT`);
}

/**
 * Distributes `table` by workspace_id co-located with `anchor` (the first table placed), or adopts
 * it when the application already did; refuses a table distributed otherwise, naming it and its
 * column. `isSource`: an application table, whose key may need widening.
 */
async function placeTable(db: Queryable, table: string, anchor: string | undefined, isSource: boolean) {
  const placement = await placementOf(db, table);
  if (placement.method === null) {
    const { rows } = await db.query<{ has: boolean }>(
      `SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2
                      AND NOT attisdropped) AS has`,
      [table, DISTRIBUTION_COLUMN],
    );
    if (rows[0]?.has !== true)
      throw new Error(
        `cannot distribute ${table} on Citus: it has no ${DISTRIBUTION_COLUMN} column, the column every ` +
          'source and rollup table is distributed by',
      );
    if (isSource) {
      await widenPrimaryKey(db, table);
      await dropChangeCapture(db, table);
    }
    await db.query(`SELECT create_distributed_table($1, $2, colocate_with => $3)`, [
      table,
      DISTRIBUTION_COLUMN,
      anchor ?? 'default',
    ]);
    return;
  }
  if (placement.method !== 'h' || placement.column !== DISTRIBUTION_COLUMN) {
    const how =
      placement.method === 'h'
        ? `distributed by ${placement.column ?? '?'}`
        : 'a reference or local Citus table';
    throw new Error(
      `${table} is ${how} on Citus; aggjobs needs it distributed by ${DISTRIBUTION_COLUMN}` +
        `${anchor === undefined ? '' : `, co-located with ${anchor}`}, so that every group's rows are on ` +
        `one shard: SELECT alter_distributed_table('${table}', distribution_column := '${DISTRIBUTION_COLUMN}'` +
        `${anchor === undefined ? '' : `, colocate_with := '${anchor}'`}), then run aggjobs migrate again`,
    );
  }
  if (anchor === undefined) return;
  const anchored = await placementOf(db, anchor);
  if (anchored.colocation !== placement.colocation)
    throw new Error(
      `${table} is distributed by ${DISTRIBUTION_COLUMN} but not co-located with ${anchor} on Citus ` +
        `(co-location groups ${placement.colocation ?? '?'} and ${anchored.colocation ?? '?'}); a group's ` +
        `source and rollup rows must be on one shard: SELECT alter_distributed_table('${table}', ` +
        `colocate_with := '${anchor}'), then run aggjobs migrate again`,
    );
}

/**
 * Places every source table and rollup table of `definitions` on the cluster (see the top of this
 * file). Run by installRollups inside its transaction, after the rollup tables exist.
 */
export async function distributeForCitus(
  db: Queryable,
  definitions: readonly RollupDefinition[],
): Promise<void> {
  definitions.forEach(checkCitusDefinition);
  const sources = [...new Set(definitions.map((d) => d.source))];
  // The anchor of the co-location group: a source the application already distributed by
  // workspace_id, else the first source.
  let anchor: string | undefined;
  for (const source of sources) {
    const p = await placementOf(db, source);
    if (p.method === 'h' && p.column === DISTRIBUTION_COLUMN) {
      anchor = source;
      break;
    }
  }
  const ordered = anchor === undefined ? sources : [anchor, ...sources.filter((s) => s !== anchor)];
  for (const source of ordered) {
    await placeTable(db, source, anchor, true);
    anchor ??= source;
  }
  for (const def of definitions) await placeTable(db, `analytics.${def.name}`, anchor, false);
  for (const [source, columns] of groupColumnsBySource(definitions))
    for (const statement of citusChangeCaptureSql(source, columns)) await db.query(statement);
}

/**
 * A rollup table created anew outside migrate (a rebuild whose table's columns or key changed, or
 * whose table was missing): on Citus, when `def`'s source is distributed, it is distributed by
 * workspace_id co-located with its source, as migrate places it — a local table would hold rows no
 * per-node refresh finds. Nothing elsewhere.
 */
export async function placeRecreatedRollup(db: Queryable, def: RollupDefinition): Promise<void> {
  if (!(await citusInstalled(db))) return;
  if ((await placementOf(db, def.source)).method === null) return;
  await placeTable(db, `analytics.${def.name}`, def.source, false);
}
