BEGIN;
DROP TRIGGER aggjobs_log_moves ON public.execution_logs;
DROP TRIGGER aggjobs_log_deletes ON public.execution_logs;
CREATE TRIGGER aggjobs_log_moves AFTER UPDATE ON public.execution_logs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION aggjobs.log_old_groups('started_at', 'workspace_id');
CREATE TRIGGER aggjobs_log_deletes AFTER DELETE ON public.execution_logs REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION aggjobs.log_old_groups('started_at', 'workspace_id');
COMMIT;
