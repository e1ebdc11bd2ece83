-- Progress inside a backfill window (docs/tasks.md "Backfill").
--
-- A backfill's windows are sized by rows (a month of a few million rows a day is one window), so
-- counting windows done said 0 of 1 until the end. A window run now records when it claimed the
-- window and how many of its granularity's rollups it has refreshed (each refresh commits on its
-- own): the progress counts rollup refreshes, and the time left is paced from the first claim.
-- Windows planned before this migration have no claim time and no total (NULL, rollups_done 0):
-- one refresh each until a worker claims them.
ALTER TABLE aggjobs.backfill_windows
  ADD COLUMN claimed_at    timestamptz,
  ADD COLUMN rollups_done  integer NOT NULL DEFAULT 0 CHECK (rollups_done >= 0),
  ADD COLUMN rollups_total integer CHECK (rollups_total > 0 AND rollups_done <= rollups_total);
