-- Change capture on the middle levels of a sub-partitioned source (docs/engine.md "Partitions").
--
-- A statement that names a partition fires only that partition's statement triggers. 000012 and
-- 000013 put aggjobs' statement triggers on every leaf partition; a DELETE or UPDATE that names a
-- middle level (a partition that is itself partitioned) fired none, and was not logged. Statement
-- triggers with transition tables are allowed on a partitioned table (the root has them), so
-- capture_partitions now puts them on every partition below the root, leaves and middle levels;
-- the log functions write under the root's name (pg_partition_root), as for a leaf. A statement
-- that names one level never fires another level's statement triggers: nothing is logged twice.
--
-- As in 000013 otherwise.
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
    FOR p IN SELECT relid FROM pg_partition_tree(parent) WHERE relid <> parent ORDER BY level LOOP
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
