-- A run started by retrying another (the dashboard's and the CLI's Retry) names the run it retried,
-- so each links to the other. NULL for every other run. No foreign key: the retried run may be
-- pruned by cleanup while its retry is kept.
ALTER TABLE aggjobs.task_runs ADD COLUMN retry_of text;

CREATE INDEX task_runs_retry_of_idx ON aggjobs.task_runs (retry_of) WHERE retry_of IS NOT NULL;
