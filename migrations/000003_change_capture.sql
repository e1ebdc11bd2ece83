-- Change capture for the rollup engine (README "How change capture works").
--
-- Every source row carries `aggjobs_xid`, the id of the transaction that last wrote it (set by a
-- column default on INSERT and by a row trigger on UPDATE). A refresh takes the rows whose writer
-- was not visible in the snapshot of the previous refresh. Deletes, and updates that move a row to another group (its time or a dimension
-- changed), leave the old row's group columns in aggjobs.change_log through a statement trigger
-- with transition tables. The columns, triggers and indexes are attached to each source table by
-- the engine from the rollup definitions (installRollups), so a user-defined rollup on another table
-- gets the same.

-- Old group columns of deleted or moved rows. `xid` is the writing transaction.
CREATE TABLE aggjobs.change_log (
  id           bigserial PRIMARY KEY,
  source_table text NOT NULL,
  xid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
  old_row      jsonb NOT NULL
);
CREATE INDEX change_log_source_xid_idx ON aggjobs.change_log (source_table, xid);

-- BEFORE UPDATE, per row: the row now belongs to this transaction.
CREATE FUNCTION aggjobs.stamp_row_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.aggjobs_xid := pg_current_xact_id();
  RETURN NEW;
END
$$;

-- AFTER DELETE / AFTER UPDATE, per statement, with transition tables old_rows (and new_rows).
-- TG_ARGV: the group columns of every rollup on the table (time column and dimensions).
-- A retention delete sets aggjobs.retention = 'on' for its transaction: it must not look like a
-- delete to the engine (the buckets it empties are frozen, not recomputed).
CREATE FUNCTION aggjobs.log_old_groups() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  source text := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
  picked text;
  moved  text;
BEGIN
  IF current_setting('aggjobs.retention', true) = 'on' THEN
    RETURN NULL;
  END IF;
  SELECT string_agg(format('%L, o.%I', c, c), ', '), string_agg(format('o.%I IS DISTINCT FROM n.%I', c, c), ' OR ')
    INTO picked, moved
    FROM unnest(TG_ARGV) AS c;
  IF TG_OP = 'DELETE' THEN
    EXECUTE format('INSERT INTO aggjobs.change_log (source_table, old_row)
                    SELECT %L, jsonb_build_object(%s) FROM old_rows o', source, picked);
  ELSE
    EXECUTE format('INSERT INTO aggjobs.change_log (source_table, old_row)
                    SELECT %L, jsonb_build_object(%s) FROM old_rows o JOIN new_rows n ON n.id = o.id
                    WHERE %s', source, picked, moved);
  END IF;
  RETURN NULL;
END
$$;

-- One row per rollup: up to where it has consumed changes.
--   snapshot: the snapshot the last incremental run read the sources with; every write visible in
--             it has been folded in. The next run takes the writes *not* visible in it. NULL: never
--             refreshed; the first incremental run recomputes all of history.
--   horizon:  that snapshot's xmin: every transaction below it has been folded in (lag reporting
--             and change-log pruning).
CREATE TABLE aggjobs.rollup_state (
  rollup          text PRIMARY KEY,
  source_table    text NOT NULL,
  snapshot        pg_snapshot,
  horizon         xid8,
  horizon_at      timestamptz,
  last_refresh_at timestamptz,
  last_result     jsonb
);

-- Per source table: rows older than `cutoff` may have been deleted by retention. Buckets that
-- start before it are frozen: never recomputed from the missing rows.
CREATE TABLE aggjobs.retention_watermarks (
  source_table text PRIMARY KEY,
  cutoff       timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Per materialized view: the inputs it was last refreshed from, to skip a refresh that would
-- change nothing.
CREATE TABLE aggjobs.view_refreshes (
  view_name       text PRIMARY KEY,
  snapshot        pg_snapshot NOT NULL,
  horizon         xid8 NOT NULL,
  inputs_token    text NOT NULL,
  refreshed_at    timestamptz NOT NULL,
  duration_ms     integer NOT NULL
);
