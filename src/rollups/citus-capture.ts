import { inTransaction, withTransaction, type Pool, type PoolClient } from '../db/index.ts';
import { onEachNode, workerNodes } from './citus-nodes.ts';
import { ident, literal, qualified } from './sql-identifier.ts';

/**
 * Change capture on Citus, per node (docs/scaling.md "Per-node change capture").
 *
 * On one server a source row's `aggjobs_xid` is its writer's transaction id and a refresh compares
 * it with the previous refresh's snapshot. On Citus transaction ids and snapshots are per node, so
 * everything here is per node:
 *
 * - the stamp is set by a BEFORE INSERT OR UPDATE row trigger, which Citus creates on every shard
 *   (`citus.enable_unsafe_triggers`) and which runs on the node that holds the shard: the stamp is
 *   the writing transaction's id *on that node*. A column default would not do: Citus evaluates a
 *   volatile default on the coordinator for a routed INSERT.
 * - deletes and moves are logged by AFTER statement triggers on the shards into
 *   `aggjobs_node.change_log`, a plain table on each node, under the shard's name; a TRUNCATE of a
 *   shard into `aggjobs_node.truncations`;
 * - `aggjobs_node.rollup_state` on each node holds, per rollup, the snapshot of that node's last
 *   refresh and the shard placements it covered (citus-refresh.ts).
 *
 * Schema `aggjobs_node` exists on every node (the coordinator too, which holds the functions the
 * triggers of the distributed tables name). Its DDL is run on each node directly, with Citus's DDL
 * propagation off, so that Citus neither distributes nor tracks these objects.
 */

/** A node's change log: created by the install, and by the trigger on a node added after it. */
const changeLogSql = `
CREATE TABLE IF NOT EXISTS aggjobs_node.change_log (
  id           bigserial PRIMARY KEY,
  source_table text NOT NULL,
  xid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
  old_row      jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS change_log_source_xid_idx ON aggjobs_node.change_log (source_table, xid);`;

/**
 * A node's record of TRUNCATEs of its shards (no row trigger sees the rows a TRUNCATE removes): the
 * node's refresh recomputes whole each pair whose source shard was truncated since its previous
 * snapshot.
 */
const truncationsSql = `
CREATE TABLE IF NOT EXISTS aggjobs_node.truncations (
  source_table text NOT NULL,
  xid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
  truncated_at timestamptz NOT NULL DEFAULT now()
);`;

const nodeObjectsSql = `
SET LOCAL citus.enable_ddl_propagation = off;
CREATE SCHEMA IF NOT EXISTS aggjobs_node;
${changeLogSql}
${truncationsSql}
CREATE TABLE IF NOT EXISTS aggjobs_node.rollup_state (
  rollup       text PRIMARY KEY,
  source_table text NOT NULL,
  snapshot     pg_snapshot NOT NULL,
  horizon      xid8 NOT NULL,
  placements   bigint[] NOT NULL,
  refreshed_at timestamptz NOT NULL,
  last_result  jsonb
);
CREATE OR REPLACE FUNCTION aggjobs_node.stamp_row_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.aggjobs_xid := pg_current_xact_id();
  RETURN NEW;
END
$$;
-- As aggjobs.log_old_groups (migration 000008), into this node's change log, under the shard's name.
CREATE OR REPLACE FUNCTION aggjobs_node.log_old_groups() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  source   text := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
  picked   text;
  moved    text;
  same_key text;
BEGIN
  IF current_setting('aggjobs.retention', true) = 'on' THEN
    RETURN NULL;
  END IF;
  -- A node added after aggjobs migrate has these functions (Citus copies a distributed table's
  -- trigger functions to every node) but not this node's change log: created here, so that the
  -- application's deletes and updates on shards moved there never fail.
  IF to_regclass('aggjobs_node.change_log') IS NULL THEN
    ${changeLogSql}
  END IF;
  SELECT string_agg(format('%L, o.%I', c, c), ', '), string_agg(format('o.%I IS DISTINCT FROM n.%I', c, c), ' OR ')
    INTO picked, moved
    FROM unnest(TG_ARGV) AS c;
  IF TG_OP = 'DELETE' THEN
    EXECUTE format('INSERT INTO aggjobs_node.change_log (source_table, old_row)
                    SELECT %L, jsonb_build_object(%s) FROM old_rows o', source, picked);
    RETURN NULL;
  END IF;
  SELECT string_agg(format('n.%I = o.%I', a.attname, a.attname), ' AND ')
    INTO same_key
    FROM pg_index i
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
    WHERE i.indrelid = TG_RELID AND i.indisprimary;
  EXECUTE format('INSERT INTO aggjobs_node.change_log (source_table, old_row)
                  SELECT %L, jsonb_build_object(%s) FROM old_rows o
                  WHERE NOT EXISTS (SELECT FROM new_rows n WHERE %s AND NOT (%s))',
                 source, picked, coalesce(same_key, 'false'), moved);
  RETURN NULL;
END
$$;
-- A TRUNCATE. On the coordinator, of the distributed table: recorded where the coordinator's refresh
-- looks, as on one server (aggjobs.source_truncations, migration 000013), so the rollups of the source
-- are refused until rebuilt; on a worker node, of the distributed table: refused.
-- Of a shard (Citus puts this trigger on the shards a move creates, not on
-- the others): into this node's truncations, under the shard's name, created here
-- when missing as the change log is; the node's next refresh recomputes that shard whole.
CREATE OR REPLACE FUNCTION aggjobs_node.log_truncate() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = TG_RELID) THEN
    -- The distributed table on a worker node (Citus 11+ takes queries there): the record would be
    -- where no refresh looks, and the other nodes' shards are emptied without one. Refused.
    IF to_regclass('aggjobs.source_truncations') IS NULL THEN
      RAISE EXCEPTION 'TRUNCATE % on the Citus coordinator, not on a worker node: aggjobs records a truncation there, so that the rollups of the table are rebuilt',
        format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
    END IF;
    INSERT INTO aggjobs.source_truncations (source_table, truncated_table)
    VALUES (format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME), format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME));
    RETURN NULL;
  END IF;
  IF to_regclass('aggjobs_node.truncations') IS NULL THEN
    ${truncationsSql}
  END IF;
  INSERT INTO aggjobs_node.truncations (source_table) VALUES (format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME));
  RETURN NULL;
END
$$;`;

/** Creates (or updates) the node objects on one node, in a transaction on that node. */
async function installNodeObjects(client: PoolClient): Promise<void> {
  await inTransaction(client, (c) => c.query(nodeObjectsSql));
}

/**
 * Installs the node objects on the coordinator and on every worker node, each in its own
 * transaction on that node (they are idempotent). A node that cannot be reached fails the install
 * with its name. Run before the triggers that use them exist. A worker added later gets them from
 * the next `aggjobs migrate` (an incremental refresh on a node without them says so).
 */
export async function installNodeCapture(pool: Pool): Promise<void> {
  await withTransaction(pool, (c) => c.query(nodeObjectsSql));
  const how = {
    applicationName: 'aggjobs migrate',
    what: 'installing change capture',
    consequence: 'run aggjobs migrate again once the node is back',
  };
  const failed = (await onEachNode(pool, await workerNodes(pool), how, installNodeObjects)).find(
    (n) => n.error !== undefined,
  );
  if (failed !== undefined) throw failed.error;
}

/**
 * The statements that put change capture on a distributed source table, run on the coordinator in
 * the install's transaction: Citus creates the column, the index and the triggers on every shard
 * (and on shards it creates later, by a move or a split). `columns`: every column a rollup groups
 * the source's rows by, kept by the change log for a deleted or moved row.
 */
export function citusChangeCaptureSql(source: string, columns: readonly string[]): string[] {
  const table = qualified(source);
  const bare = source.split('.')[1] ?? source;
  const args = columns.map(literal).join(', ');
  return [
    'SET LOCAL citus.enable_unsafe_triggers = on',
    `ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS aggjobs_xid xid8`,
    `ALTER TABLE ${table} ALTER COLUMN aggjobs_xid DROP DEFAULT`,
    `CREATE INDEX IF NOT EXISTS ${ident(`${bare}_aggjobs_xid_idx`)} ON ${table} (aggjobs_xid)`,
    `DROP TRIGGER IF EXISTS aggjobs_stamp_xid ON ${table}`,
    `CREATE TRIGGER aggjobs_stamp_xid BEFORE INSERT OR UPDATE ON ${table}
       FOR EACH ROW EXECUTE FUNCTION aggjobs_node.stamp_row_xid()`,
    `DROP TRIGGER IF EXISTS aggjobs_log_deletes ON ${table}`,
    `CREATE TRIGGER aggjobs_log_deletes AFTER DELETE ON ${table}
       REFERENCING OLD TABLE AS old_rows
       FOR EACH STATEMENT EXECUTE FUNCTION aggjobs_node.log_old_groups(${args})`,
    `DROP TRIGGER IF EXISTS aggjobs_log_moves ON ${table}`,
    `CREATE TRIGGER aggjobs_log_moves AFTER UPDATE ON ${table}
       REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
       FOR EACH STATEMENT EXECUTE FUNCTION aggjobs_node.log_old_groups(${args})`,
    `DROP TRIGGER IF EXISTS aggjobs_log_truncate ON ${table}`,
    `CREATE TRIGGER aggjobs_log_truncate AFTER TRUNCATE ON ${table}
       FOR EACH STATEMENT EXECUTE FUNCTION aggjobs_node.log_truncate()`,
  ];
}
