-- Progress inside a backfill window, and a retried window that resumes (docs/tasks.md "Backfill").
--
-- A backfill's windows are sized by rows (a month of a few million rows a day is one window), so
-- counting windows done said 0 of 1 until the end, and a window that failed in its last rollup
-- redid all of them. A window run now records when it claimed the window, how many rollups its
-- granularity has, and each rollup whose refresh has committed (each in a transaction of its own):
-- the progress counts rollup refreshes, the time left is paced from the first claim, and a retry of
-- the window's run skips the rollups already refreshed. The attempt that claimed the window fences
-- what later writes it (progress, done, failed): an attempt taken over while still alive (a
-- stalled worker) no longer marks the window failed while its successor runs it. Windows planned
-- before this migration have no claim time and no total (NULL): one refresh each until claimed.
ALTER TABLE aggjobs.backfill_windows
  ADD COLUMN claimed_at        timestamptz,
  ADD COLUMN claim_attempt     integer,
  ADD COLUMN rollups_total     integer CHECK (rollups_total > 0),
  ADD COLUMN rollups_refreshed text[] NOT NULL DEFAULT '{}',
  ADD CONSTRAINT backfill_windows_rollups_refreshed_check CHECK (cardinality(rollups_refreshed) <= rollups_total);
