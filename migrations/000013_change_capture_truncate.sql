-- TRUNCATE of a source table (or of one of its partitions) fires no row or statement DELETE
-- trigger: the rows vanish without a trace in aggjobs.change_log, and the rollup groups built from
-- them would be served for ever. An AFTER TRUNCATE statement trigger (installRollups puts it on each
-- source, capture_partitions below on each partition) records the truncation here, under the
-- source's name. A refresh whose stored snapshot does not see a truncation of its source refuses
-- to write and names `aggjobs rollups rebuild` (src/rollups/build-identity.ts), as for a changed
-- zone or definition: the rebuild takes a new snapshot, in which the truncation is visible.

CREATE TABLE aggjobs.source_truncations (
  id              bigserial PRIMARY KEY,
  -- The source as rollups name it (the partitioned parent for a partition).
  source_table    text NOT NULL,
  -- The table the TRUNCATE emptied: the source or one of its partitions.
  truncated_table text NOT NULL,
  xid             xid8 NOT NULL DEFAULT pg_current_xact_id(),
  truncated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX source_truncations_source_idx ON aggjobs.source_truncations (source_table, id);

-- SECURITY DEFINER with a pinned search path, as aggjobs.log_old_groups (000006): the application's
-- role needs no grant on schema aggjobs.
CREATE FUNCTION aggjobs.log_truncate() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  root regclass := coalesce(pg_partition_root(TG_RELID), TG_RELID::regclass);
BEGIN
  INSERT INTO aggjobs.source_truncations (source_table, truncated_table)
  SELECT format('%I.%I', n.nspname, c.relname), format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = root;
  RETURN NULL;
END
$$;

-- As in 000012, with the truncate trigger copied to every leaf partition too (a TRUNCATE that names
-- a partition fires only that partition's triggers).
CREATE OR REPLACE FUNCTION aggjobs.capture_partitions(parent regclass) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  t       record;
  p       regclass;
  made    integer := 0;
  args    text;
BEGIN
  FOR t IN
    SELECT tg.tgname,
           CASE tg.tgname WHEN 'aggjobs_log_deletes' THEN 'AFTER DELETE'
                          WHEN 'aggjobs_log_truncate' THEN 'AFTER TRUNCATE' ELSE 'AFTER UPDATE' END AS event,
           CASE tg.tgname WHEN 'aggjobs_log_deletes' THEN 'REFERENCING OLD TABLE AS old_rows'
                          WHEN 'aggjobs_log_truncate' THEN ''
                ELSE 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows' END AS referencing,
           CASE tg.tgname WHEN 'aggjobs_log_truncate' THEN 'aggjobs.log_truncate' ELSE 'aggjobs.log_old_groups' END AS fn,
           tg.tgargs
    FROM pg_trigger tg
    WHERE tg.tgrelid = parent AND tg.tgname IN ('aggjobs_log_deletes', 'aggjobs_log_moves', 'aggjobs_log_truncate')
  LOOP
    -- tgargs: each argument NUL-terminated (column names: lower-case identifiers).
    SELECT string_agg(quote_literal(a), ', ')
      INTO args
      FROM unnest(string_to_array(encode(t.tgargs, 'escape'), '\000')) AS a
      WHERE a <> '';
    FOR p IN SELECT relid FROM pg_partition_tree(parent) WHERE isleaf AND relid <> parent LOOP
      CONTINUE WHEN EXISTS (SELECT FROM pg_trigger x WHERE x.tgrelid = p AND x.tgname = t.tgname AND x.tgargs = t.tgargs);
      EXECUTE format('CREATE OR REPLACE TRIGGER %I %s ON %s %s FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)',
                     t.tgname, t.event, p, t.referencing, t.fn, coalesce(args, ''));
      -- A TRUNCATE applied by logical replication runs in a replica session: fired there too.
      IF t.tgname = 'aggjobs_log_truncate' THEN
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER aggjobs_log_truncate', p);
      END IF;
      made := made + 1;
    END LOOP;
  END LOOP;
  RETURN made;
END
$$;
