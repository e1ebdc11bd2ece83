-- Change capture on a source that logical replication writes (an analytics database subscribed to
-- the product database's tables).
--
-- The apply worker of a subscription runs with session_replication_role = replica: the ordinary
-- (ORIGIN) triggers of aggjobs do not fire there, and PostgreSQL never fires statement triggers for
-- applied changes at all. An applied UPDATE kept the row's old aggjobs_xid, and an applied DELETE
-- or move logged nothing: the refresh missed both, silently.
--
-- installRollups therefore enables the stamp trigger `aggjobs_stamp_xid` (BEFORE UPDATE) ALWAYS,
-- and adds one row trigger enabled for replica sessions only (ENABLE REPLICA TRIGGER), so that
-- ordinary sessions keep the statement triggers and pay nothing more: `aggjobs_log_replicated`
-- (AFTER UPDATE OR DELETE, below). An applied INSERT takes aggjobs_xid's column default, the
-- subscriber's own transaction id, as long as the publication does not carry that column. No
-- BEFORE INSERT trigger: its mere presence, enabled or not, makes COPY insert row by row (a COPY of
-- 1M rows took 1.5x as long with one enabled for replica sessions only; measured on PostgreSQL 15).

-- The row form of aggjobs.log_old_groups: the old row's group columns (the trigger's arguments)
-- for a DELETE, and for an UPDATE that changes one of them. An UPDATE within its group needs no
-- entry: the new version's stamp makes the refresh recompute that group. Under the root's name for
-- a partition. SECURITY DEFINER with a pinned search path, as 000006.
CREATE FUNCTION aggjobs.log_replicated_row() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  root    regclass := coalesce(pg_partition_root(TG_RELID), TG_RELID::regclass);
  old_row jsonb := to_jsonb(OLD);
  new_row jsonb;
BEGIN
  IF current_setting('aggjobs.retention', true) = 'on' THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    new_row := to_jsonb(NEW);
    IF NOT EXISTS (SELECT FROM unnest(TG_ARGV) AS c WHERE old_row -> c IS DISTINCT FROM new_row -> c) THEN
      RETURN NULL;
    END IF;
  END IF;
  INSERT INTO aggjobs.change_log (source_table, old_row)
  SELECT format('%I.%I', n.nspname, cl.relname), (SELECT jsonb_object_agg(c, old_row -> c) FROM unnest(TG_ARGV) AS c)
  FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace WHERE cl.oid = root;
  RETURN NULL;
END
$$;
