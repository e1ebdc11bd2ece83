-- Change capture on source tables range-partitioned by their time column (docs/scaling.md "The
-- source tables").
--
-- The statement triggers with transition tables sit on the partitioned parent, where PostgreSQL
-- fires them for statements that name the parent; their old_rows/new_rows hold the rows of every
-- partition the statement touched, and an UPDATE that moves a row to another partition (a delete
-- plus an insert inside PostgreSQL) fires the parent's UPDATE statement trigger with the row in both
-- (checked on PostgreSQL 15), so its old group is logged by 000008's rule.
--
-- A statement that names a partition (`DELETE FROM execution_logs_p20261101 …`) fires only that
-- partition's statement triggers. aggjobs therefore also puts the two statement triggers on every
-- partition (aggjobs.capture_partitions below, called by `aggjobs migrate` and after each partition
-- it creates ahead); they log under the parent's name, which is what the rollups read. A statement
-- on the parent never fires a partition's statement triggers, so nothing is logged twice.
--
-- CREATE OR REPLACE resets the function's attributes: SECURITY DEFINER and the pinned search path
-- of 000006 are restated.

CREATE OR REPLACE FUNCTION aggjobs.log_old_groups() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  root     regclass := coalesce(pg_partition_root(TG_RELID), TG_RELID::regclass);
  source   text;
  picked   text;
  moved    text;
  same_key text;
BEGIN
  IF current_setting('aggjobs.retention', true) = 'on' THEN
    RETURN NULL;
  END IF;
  SELECT format('%I.%I', n.nspname, c.relname) INTO source
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = root;
  SELECT string_agg(format('%L, o.%I', c, c), ', '), string_agg(format('o.%I IS DISTINCT FROM n.%I', c, c), ' OR ')
    INTO picked, moved
    FROM unnest(TG_ARGV) AS c;
  IF TG_OP = 'DELETE' THEN
    EXECUTE format('INSERT INTO aggjobs.change_log (source_table, old_row)
                    SELECT %L, jsonb_build_object(%s) FROM old_rows o', source, picked);
    RETURN NULL;
  END IF;
  SELECT string_agg(format('n.%I = o.%I', a.attname, a.attname), ' AND ')
    INTO same_key
    FROM pg_index i
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
    WHERE i.indrelid = TG_RELID AND i.indisprimary;
  EXECUTE format('INSERT INTO aggjobs.change_log (source_table, old_row)
                  SELECT %L, jsonb_build_object(%s) FROM old_rows o
                  WHERE NOT EXISTS (SELECT FROM new_rows n WHERE %s AND NOT (%s))',
                 source, picked, coalesce(same_key, 'false'), moved);
  RETURN NULL;
END
$$;

-- Puts the parent's two statement triggers (with the parent's group columns) on every leaf
-- partition of `parent` that lacks them or has other columns; returns how many it created. A table
-- that is not partitioned, or whose parent has no aggjobs triggers, gets none.
CREATE FUNCTION aggjobs.capture_partitions(parent regclass) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  t       record;
  p       regclass;
  made    integer := 0;
  args    text;
BEGIN
  FOR t IN
    SELECT tg.tgname,
           CASE tg.tgname WHEN 'aggjobs_log_deletes' THEN 'AFTER DELETE' ELSE 'AFTER UPDATE' END AS event,
           CASE tg.tgname WHEN 'aggjobs_log_deletes' THEN 'REFERENCING OLD TABLE AS old_rows'
                ELSE 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows' END AS referencing,
           tg.tgargs
    FROM pg_trigger tg
    WHERE tg.tgrelid = parent AND tg.tgname IN ('aggjobs_log_deletes', 'aggjobs_log_moves')
  LOOP
    -- tgargs: each argument NUL-terminated (column names: lower-case identifiers).
    SELECT string_agg(quote_literal(a), ', ')
      INTO args
      FROM unnest(string_to_array(encode(t.tgargs, 'escape'), '\000')) AS a
      WHERE a <> '';
    FOR p IN SELECT relid FROM pg_partition_tree(parent) WHERE isleaf AND relid <> parent LOOP
      CONTINUE WHEN EXISTS (SELECT FROM pg_trigger x WHERE x.tgrelid = p AND x.tgname = t.tgname AND x.tgargs = t.tgargs);
      EXECUTE format('CREATE OR REPLACE TRIGGER %I %s ON %s %s FOR EACH STATEMENT EXECUTE FUNCTION aggjobs.log_old_groups(%s)',
                     t.tgname, t.event, p, t.referencing, coalesce(args, ''));
      made := made + 1;
    END LOOP;
  END LOOP;
  RETURN made;
END
$$;
