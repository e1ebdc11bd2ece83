-- What the dashboard's run page shows beyond the message: the error's stack, and the log lines the
-- task wrote during its last attempt (bounded by the worker: at most 200 lines).
ALTER TABLE aggjobs.task_runs
  ADD COLUMN error_stack text,
  ADD COLUMN logs jsonb;
