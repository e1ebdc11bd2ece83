import type { Pool, PoolClient } from '../db/index.ts';
import { withTransaction } from '../db/index.ts';
import { installNodeCapture } from './citus-capture.ts';
import { checkCitusDefinition, citusInstalled, distributeForCitus } from './citus-install.ts';
import { withViewRollups } from './citus-view-rollups.ts';
import { groupColumnsBySource, type RollupDefinition } from './definition.ts';
import { checkCoveringIndexKeys, installCoveringIndexes } from './covering-index.ts';
import { installStateColumns, statePlan } from './delta-state.ts';
import { checkGrain } from './grain.ts';
import { rollupSql } from './rollup-sql.ts';
import { ident, literal, qualified } from './sql-identifier.ts';

const NAME = /^[a-z_][a-z0-9_]*$/;

/** Rejects a definition the engine cannot run, naming the field and the rule. */
export function checkDefinition(def: RollupDefinition): void {
  const fail = (field: string, rule: string, value: unknown): never => {
    throw new Error(
      `rollup ${JSON.stringify(def.name)}: ${field} must be ${rule}, got ${JSON.stringify(value)}`,
    );
  };
  if (!NAME.test(def.name)) fail('name', 'a lower-case SQL name', def.name);
  if (!/^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$/.test(def.source))
    fail('source', 'schema.table in lower case', def.source);
  if (!NAME.test(def.timeColumn)) fail('timeColumn', 'a lower-case column name', def.timeColumn);
  if (def.dimensions.length === 0) fail('dimensions', 'at least one column', def.dimensions);
  for (const d of def.dimensions)
    if (!NAME.test(d.column)) fail('dimensions[].column', 'a lower-case column name', d.column);
  for (const m of def.measures)
    if (!NAME.test(m.name)) fail('measures[].name', 'a lower-case column name', m.name);
  const names = [...def.dimensions.map((d) => d.column), ...def.measures.map((m) => m.name)];
  // The refresh SQL names its own columns aggjobs_* beside the rollup's (rollup-sql.ts).
  const reserved = names.find((n) => ['bucket_start', 'updated_at'].includes(n) || n.startsWith('aggjobs_'));
  if (reserved !== undefined)
    fail('dimensions/measures', 'not bucket_start, updated_at or aggjobs_*', reserved);
  if (new Set(names).size !== names.length) fail('dimensions/measures', 'distinct names', names);
  try {
    checkGrain(def.grain);
  } catch (error) {
    fail('grain', 'valid', (error as Error).message);
  }
  if (def.deltaState === true) statePlan(def); // throws naming a measure it cannot keep
}

/**
 * Per-group state (delta-state.ts) is kept on one server, for a plain source: a partition's own
 * capture triggers (migration 000012) and Citus's per-node capture log only group columns.
 */
async function checkDeltaStateSource(
  client: PoolClient,
  def: RollupDefinition,
  citus: boolean,
): Promise<void> {
  if (def.deltaState !== true) return;
  const refuse = (why: string): never => {
    throw new Error(`rollup ${JSON.stringify(def.name)}: deltaState must be off ${why}`);
  };
  if (citus) refuse('on a Citus cluster (its change capture per node keeps no old rows whole)');
  const { rows } = await client.query<{ partitioned: boolean }>(
    `SELECT relkind = 'p' OR relispartition AS partitioned FROM pg_class WHERE oid = to_regclass($1)`,
    [def.source],
  );
  if (rows[0]?.partitioned === true)
    refuse(`for a partitioned source, got ${def.source} (its partitions' capture keeps no old rows whole)`);
}

/**
 * `whole`: a rollup of the source keeps per-group state (delta-state.ts), so every old row of a
 * DELETE or UPDATE is logged whole (migration 000018), not only the group columns of those that
 * left their group.
 */
function changeCaptureSql(source: string, columns: readonly string[], whole: boolean): string[] {
  const table = qualified(source);
  const bare = source.split('.')[1] ?? source;
  const args = columns.map(literal).join(', ');
  const logOld = whole ? 'aggjobs.log_old_rows()' : `aggjobs.log_old_groups(${args})`;
  const logReplicated = whole ? 'aggjobs.log_replicated_old_row()' : `aggjobs.log_replicated_row(${args})`;
  return [
    // No default on ADD COLUMN: existing rows keep NULL without a table rewrite; a rollup that has
    // never run recomputes all of history on its first run, so they are covered.
    `ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS aggjobs_xid xid8`,
    `ALTER TABLE ${table} ALTER COLUMN aggjobs_xid SET DEFAULT pg_current_xact_id()`,
    `CREATE INDEX IF NOT EXISTS ${ident(`${bare}_aggjobs_xid_idx`)} ON ${table} (aggjobs_xid)`,
    `CREATE OR REPLACE TRIGGER aggjobs_stamp_xid BEFORE UPDATE ON ${table}
       FOR EACH ROW EXECUTE FUNCTION aggjobs.stamp_row_xid()`,
    `CREATE OR REPLACE TRIGGER aggjobs_log_deletes AFTER DELETE ON ${table}
       REFERENCING OLD TABLE AS old_rows
       FOR EACH STATEMENT EXECUTE FUNCTION ${logOld}`,
    `CREATE OR REPLACE TRIGGER aggjobs_log_moves AFTER UPDATE ON ${table}
       REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
       FOR EACH STATEMENT EXECUTE FUNCTION ${logOld}`,
    // TRUNCATE fires no DELETE trigger: recorded, so that a refresh refuses (migration 000013).
    `CREATE OR REPLACE TRIGGER aggjobs_log_truncate AFTER TRUNCATE ON ${table}
       FOR EACH STATEMENT EXECUTE FUNCTION aggjobs.log_truncate()`,
    `ALTER TABLE ${table} ENABLE ALWAYS TRIGGER aggjobs_log_truncate`,
    // Changes applied by logical replication run in a replica session, where only triggers enabled
    // ALWAYS or REPLICA fire, and only row triggers (migration 000014). CREATE OR REPLACE sets a
    // trigger back to ORIGIN: enabled again on each install.
    `ALTER TABLE ${table} ENABLE ALWAYS TRIGGER aggjobs_stamp_xid`,
    `CREATE OR REPLACE TRIGGER aggjobs_log_replicated AFTER UPDATE OR DELETE ON ${table}
       FOR EACH ROW EXECUTE FUNCTION ${logReplicated}`,
    `ALTER TABLE ${table} ENABLE REPLICA TRIGGER aggjobs_log_replicated`,
  ];
}

/**
 * The change-capture trigger pairs the old and new rows of an UPDATE by the source's primary key
 * (migration 000008): without one it could only log every updated row's old group.
 */
async function checkPrimaryKey(client: PoolClient, source: string): Promise<void> {
  const { rows } = await client.query<{ found: boolean; keyed: boolean }>(
    `SELECT to_regclass($1) IS NOT NULL AS found,
            EXISTS (SELECT FROM pg_index WHERE indrelid = to_regclass($1) AND indisprimary) AS keyed`,
    [source],
  );
  if (rows[0]?.found !== true)
    throw new Error(
      `source table ${source} of a rollup does not exist: create it before installing the rollup`,
    );
  if (rows[0].keyed !== true)
    throw new Error(
      `source table ${source} has no primary key: change capture pairs the old and new rows of an ` +
        `UPDATE by it; add one (ALTER TABLE ${source} ADD PRIMARY KEY (...)) and install again`,
    );
}

/**
 * The source has the definition's time column, as timestamptz, and its dimension columns. A
 * `timestamp without time zone` would be placed in buckets through the session's TimeZone, which
 * nothing records (build-identity.ts): refused rather than guessed.
 */
async function checkSourceColumns(client: PoolClient, def: RollupDefinition): Promise<void> {
  // The triggers record a source by its SQL spelling (format('%I.%I')), the refresh looks it up by
  // the definition's: a reserved word (public.order) is spelled quoted, so its deletes and
  // truncations were never found (silent wrong rows). Such a name is refused.
  const { rows: spelled } = await client.query<{ quoted: string }>(
    "SELECT quote_ident(split_part($1, '.', 1)) || '.' || quote_ident(split_part($1, '.', 2)) AS quoted",
    [def.source],
  );
  const quoted = spelled[0]?.quoted ?? def.source;
  if (quoted !== def.source)
    throw new Error(
      `rollup ${JSON.stringify(def.name)}: source must be a name SQL needs no quotes for (not a reserved word), ` +
        `got ${def.source}, which SQL spells ${quoted}: rename the table (ALTER TABLE ${quoted} RENAME TO …)`,
    );
  // $1 source. zoned: timestamptz, with a precision or under a domain.
  const { rows } = await client.query<{ name: string; type: string; zoned: boolean; naive: boolean }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            coalesce(nullif(t.typbasetype, 0), a.atttypid) = 'timestamptz'::regtype AS zoned,
            coalesce(nullif(t.typbasetype, 0), a.atttypid) = 'timestamp'::regtype AS naive
     FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
    [def.source],
  );
  const columns = new Map(rows.map((r) => [r.name, r]));
  const fail = (field: string, rule: string, got: string): never => {
    throw new Error(`rollup ${JSON.stringify(def.name)}: ${field} must be ${rule}, got ${got}`);
  };
  const time = columns.get(def.timeColumn);
  if (time === undefined) fail('timeColumn', `a column of ${def.source}`, JSON.stringify(def.timeColumn));
  else if (!time.zoned)
    fail(
      'timeColumn',
      'of type timestamptz (timestamp with time zone)',
      `${def.source}.${def.timeColumn} of type ${time.type}` +
        (time.naive
          ? `; convert it with ALTER TABLE ${def.source} ALTER COLUMN ${def.timeColumn} TYPE timestamptz ` +
            `USING ${def.timeColumn} AT TIME ZONE '<the zone its values are in>'`
          : ''),
    );
  for (const d of def.dimensions)
    if (!columns.has(d.column))
      fail('dimensions[].column', `a column of ${def.source}`, JSON.stringify(d.column));
}

async function checkColumns(pool: Pool, def: RollupDefinition): Promise<void> {
  const { rows } = await pool.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_schema = 'analytics' AND table_name = $1`,
    [def.name],
  );
  const have = new Set(rows.map((r) => r.column_name));
  const want = ['bucket_start', ...def.dimensions.map((d) => d.column), ...def.measures.map((m) => m.name)];
  const missing = want.filter((c) => !have.has(c));
  if (missing.length > 0) {
    throw new Error(
      `analytics.${def.name} exists without column(s) ${missing.join(', ')} of its definition: ` +
        'add them with a migration, or drop the table to have it rebuilt by a backfill',
    );
  }
}

/**
 * Makes the database ready for these rollups: change capture on each source table, the rollup
 * tables, and a state row per rollup. Idempotent; serialized with the migrator's lock.
 *
 * On a Citus coordinator the sources and rollup tables are distributed by workspace_id, with change
 * capture per node (citus-install.ts, citus-capture.ts), and the rollups the materialized views are
 * read from there are installed beside `definitions` (citus-view-rollups.ts): every install keeps
 * their change capture's columns.
 */
export async function installRollups(pool: Pool, given: readonly RollupDefinition[]): Promise<void> {
  given.forEach(checkDefinition);
  checkCoveringIndexKeys(given);
  const names = given.map((d) => d.name);
  if (new Set(names).size !== names.length)
    throw new Error(`rollup names must be distinct: ${names.join(', ')}`);
  const citus = await citusInstalled(pool);
  const definitions = citus ? withViewRollups(given) : given;
  if (citus) definitions.forEach(checkCitusDefinition);
  if (citus) await installNodeCapture(pool);
  await withTransaction(pool, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock(hashtext('aggjobs.migrate'))");
    for (const [source] of groupColumnsBySource(definitions)) await checkPrimaryKey(client, source);
    for (const def of definitions) await checkSourceColumns(client, def);
    for (const def of definitions) await checkDeltaStateSource(client, def, citus);
    for (const [source, columns] of groupColumnsBySource(definitions)) {
      if (citus) continue;
      // Kept whole while a rollup built with state reads the source, even when this install does
      // not name it: its refreshes subtract the old rows (the whole rows serve the others too).
      // $1 source
      const { rows: kept } = await client.query<{ whole: boolean }>(
        `SELECT EXISTS (SELECT FROM aggjobs.rollup_state
                        WHERE source_table = $1 AND built_definition ->> 'deltaState' = 'true') AS whole`,
        [source],
      );
      const whole =
        kept[0]?.whole === true || definitions.some((d) => d.source === source && d.deltaState === true);
      for (const statement of changeCaptureSql(source, columns, whole)) await client.query(statement);
      // Since when the capture is whole (kept from the first install that made it so): a stateful
      // refresh applies deltas only from a snapshot that sees it (delta-state.ts).
      // $1 source
      await client.query(
        whole
          ? 'INSERT INTO aggjobs.whole_capture (source_table) VALUES ($1) ON CONFLICT (source_table) DO NOTHING'
          : 'DELETE FROM aggjobs.whole_capture WHERE source_table = $1',
        [source],
      );
      // A partitioned source: the statement triggers on every partition too, for statements that
      // name a partition (migration 000012); none for a plain table.
      await client.query('SELECT aggjobs.capture_partitions($1::regclass)', [source]);
    }
    for (const def of definitions) {
      await client.query(rollupSql(def).createTable);
      await installStateColumns(client, def);
      await client.query(
        'INSERT INTO aggjobs.rollup_state (rollup, source_table) VALUES ($1, $2) ON CONFLICT (rollup) DO NOTHING',
        [def.name, def.source],
      );
    }
    if (citus) await distributeForCitus(client, definitions);
  });
  for (const def of definitions) await checkColumns(pool, def);
  // Outside the transaction: built concurrently. On Citus, indexes are built per shard by Citus.
  if (!citus) await installCoveringIndexes(pool, definitions);
}
