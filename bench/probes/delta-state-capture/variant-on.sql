-- the capture the design needs: every old row's measure inputs and stamp, for deletes and updates
CREATE OR REPLACE FUNCTION probe.log_old_rows() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF current_setting('aggjobs.retention', true) = 'on' THEN RETURN NULL; END IF;
  INSERT INTO aggjobs.change_log (source_table, old_row)
  SELECT 'public.execution_logs', jsonb_build_object('started_at', o.started_at, 'workspace_id', o.workspace_id, 'status', o.status,
    'duration_ms', o.duration_ms, 'credits_used', o.credits_used, 'user_id', o.user_id, 'workflow_id', o.workflow_id, 'aggjobs_xid', o.aggjobs_xid)
  FROM old_rows o;
  RETURN NULL;
END $$;
BEGIN;
DROP TRIGGER aggjobs_log_moves ON public.execution_logs;
DROP TRIGGER aggjobs_log_deletes ON public.execution_logs;
CREATE TRIGGER aggjobs_log_moves AFTER UPDATE ON public.execution_logs REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION probe.log_old_rows();
CREATE TRIGGER aggjobs_log_deletes AFTER DELETE ON public.execution_logs REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION probe.log_old_rows();
COMMIT;
