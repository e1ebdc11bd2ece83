-- The job runtime's state: workers online, beat leadership and its slot ledger, backfill windows.

-- One row per worker process, upserted by its heartbeat (every few seconds). A worker is online while
-- last_heartbeat is recent; rows of workers gone for a day are pruned by cleanup_old_data.
CREATE TABLE aggjobs.workers (
  name           text PRIMARY KEY,
  host           text NOT NULL,
  pid            integer NOT NULL,
  queues         text[] NOT NULL,
  concurrency    integer NOT NULL,
  active         integer NOT NULL DEFAULT 0,
  processed      bigint NOT NULL DEFAULT 0,
  failed         bigint NOT NULL DEFAULT 0,
  recycled       integer NOT NULL DEFAULT 0,
  rss_bytes      bigint,
  started_at     timestamptz NOT NULL DEFAULT now(),
  last_heartbeat timestamptz NOT NULL DEFAULT now(),
  stopped_at     timestamptz
);

-- Beat leadership as a lease: one row; the holder renews expires_at, another beat takes over once it
-- has passed. Time is the database's, so beats on machines with skewed clocks agree.
CREATE TABLE aggjobs.beat_leader (
  id          integer PRIMARY KEY CHECK (id = 1),
  holder      text NOT NULL,
  acquired_at timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);

-- The slot ledger: one row per (schedule, slot) ever enqueued, inserted in the same transaction as the
-- run's row in task_runs. The primary key is what makes a slot run once, even with two leaders.
-- enqueued is set once the broker accepted the job; a leader re-sends rows where it is still false.
CREATE TABLE aggjobs.beat_slots (
  task        text NOT NULL,
  slot        timestamptz NOT NULL,
  run_id      text NOT NULL,
  enqueued    boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task, slot)
);
CREATE INDEX beat_slots_pending_idx ON aggjobs.beat_slots (created_at) WHERE NOT enqueued;

-- The windows of a backfill (its run id): a rerun after a crash redoes only those not done.
CREATE TABLE aggjobs.backfill_windows (
  backfill_id  text NOT NULL,
  window_start timestamptz NOT NULL,
  window_end   timestamptz NOT NULL,
  state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'failed', 'cancelled')),
  run_id       text,
  result       jsonb,
  error        text,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (backfill_id, window_start)
);

CREATE INDEX task_runs_parent_idx ON aggjobs.task_runs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX task_runs_finished_idx ON aggjobs.task_runs (task, finished_at DESC) WHERE state = 'succeeded';
