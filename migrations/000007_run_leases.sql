-- One authority per run: aggjobs.task_runs. A run that a worker works on has one owner, named by a
-- lease token that the owner renews; every transition of a running run names the token it expects,
-- so a worker that stalled, was partitioned away or lost its run to a takeover changes nothing.
--   lease_token       the owner's token for the current attempt (NULL when nobody works on it)
--   lease_expires_at  the owner renews it every third of the lease; past it, the run may be taken
--                     over (BullMQ handed its job to another worker) or settled by the reaper
--   not_before        when the run may start (countdown, retry backoff): a job the broker lost is
--                     sent again with the delay it had left, not at once
--   state_changed_at  when the state last changed: how long a run has been queued, running or
--                     retrying, for the reaper's grace and the health check
--   terminate_requested_at  an operator asked to terminate the running attempt: its owner sees it at
--                     its next lease renewal even if the NOTIFY that also tells it was lost
ALTER TABLE aggjobs.task_runs
  ADD COLUMN lease_token text,
  ADD COLUMN lease_expires_at timestamptz,
  ADD COLUMN not_before timestamptz,
  ADD COLUMN state_changed_at timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN terminate_requested_at timestamptz;

CREATE INDEX task_runs_lease_idx ON aggjobs.task_runs (lease_expires_at) WHERE state = 'running';
