-- The application's tables that the rollups read. aggjobs creates them for a new database and for
-- the demo; against an existing product database they already exist and must have these columns.

CREATE TABLE IF NOT EXISTS public.workspaces (
  id         bigint PRIMARY KEY,
  name       text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per workflow execution: inserted as 'running' when it starts, updated when it ends.
CREATE TABLE IF NOT EXISTS public.execution_logs (
  id           bigserial PRIMARY KEY,
  workspace_id bigint NOT NULL,
  user_id      bigint NOT NULL,
  workflow_id  bigint NOT NULL,
  status       text NOT NULL CHECK (status IN ('running', 'success', 'failed', 'timeout', 'cancelled')),
  started_at   timestamptz NOT NULL,
  completed_at timestamptz,
  duration_ms  integer,
  credits_used numeric(14,4) NOT NULL DEFAULT 0,
  error_type   text
);

CREATE TABLE IF NOT EXISTS public.user_activity_events (
  id           bigserial PRIMARY KEY,
  workspace_id bigint NOT NULL,
  user_id      bigint NOT NULL,
  event_type   text NOT NULL,
  occurred_at  timestamptz NOT NULL,
  session_id   text,
  properties   jsonb
);

-- Credits consumed; a refund is a negative amount.
CREATE TABLE IF NOT EXISTS public.credit_transactions (
  id           bigserial PRIMARY KEY,
  workspace_id bigint NOT NULL,
  user_id      bigint,
  execution_id bigint,
  source       text NOT NULL,
  credits      numeric(14,4) NOT NULL,
  created_at   timestamptz NOT NULL
);

-- Recomputing one (bucket, workspace) group reads that workspace's rows of one time range;
-- retention deletes by time alone.
CREATE INDEX IF NOT EXISTS execution_logs_workspace_started_idx ON public.execution_logs (workspace_id, started_at);
CREATE INDEX IF NOT EXISTS execution_logs_started_idx ON public.execution_logs (started_at);
CREATE INDEX IF NOT EXISTS user_activity_events_workspace_occurred_idx ON public.user_activity_events (workspace_id, occurred_at);
CREATE INDEX IF NOT EXISTS user_activity_events_occurred_idx ON public.user_activity_events (occurred_at);
CREATE INDEX IF NOT EXISTS credit_transactions_workspace_created_idx ON public.credit_transactions (workspace_id, created_at);
CREATE INDEX IF NOT EXISTS credit_transactions_created_idx ON public.credit_transactions (created_at);
