-- aggjobs' own state. The analytics schema holds what users query; aggjobs holds what we need.

CREATE SCHEMA IF NOT EXISTS aggjobs;
CREATE SCHEMA IF NOT EXISTS analytics;

-- Every run of every task: durable history (unlike Flower's, which forgets on restart).
CREATE TABLE aggjobs.task_runs (
  id          text PRIMARY KEY,
  task        text NOT NULL,
  args        jsonb NOT NULL DEFAULT '{}'::jsonb,
  state       text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'timed_out', 'revoked', 'retrying')),
  queue       text NOT NULL,
  worker      text,
  attempts    integer NOT NULL DEFAULT 0,
  enqueued_at timestamptz NOT NULL DEFAULT now(),
  started_at  timestamptz,
  finished_at timestamptz,
  duration_ms integer,
  result      jsonb,
  error       text,
  parent_id   text
);
CREATE INDEX task_runs_task_enqueued_idx ON aggjobs.task_runs (task, enqueued_at DESC);
CREATE INDEX task_runs_state_idx ON aggjobs.task_runs (state) WHERE state IN ('queued', 'running', 'retrying');
CREATE INDEX task_runs_enqueued_idx ON aggjobs.task_runs (enqueued_at DESC);
