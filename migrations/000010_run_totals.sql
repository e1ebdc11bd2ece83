-- Cumulative totals of finished runs, by task and final state, kept when cleanup prunes the run
-- history (RUN_HISTORY_DAYS): what /metrics exports as counters, which must only grow (computed
-- from aggjobs.task_runs, they dropped every day at cleanup and Prometheus saw a counter reset).
--   runs             runs that reached this final state
--   timed_runs       those with a duration (a run revoked before it started has none)
--   duration_sum_ms  the sum of their durations
--   le_counts        per bound of aggjobs.runtime_bounds(), how many timed runs took at most that long
CREATE TABLE aggjobs.run_totals (
  task            text NOT NULL,
  state           text NOT NULL,
  runs            bigint NOT NULL DEFAULT 0,
  timed_runs      bigint NOT NULL DEFAULT 0,
  duration_sum_ms bigint NOT NULL DEFAULT 0,
  le_counts       bigint[] NOT NULL,
  PRIMARY KEY (task, state)
);

-- The runtime histogram's bounds in seconds (src/web/queries/metrics-data.ts RUNTIME_BUCKETS, checked
-- equal by a test). Changing them means a new migration that recomputes le_counts.
CREATE FUNCTION aggjobs.runtime_bounds() RETURNS float8[] LANGUAGE sql IMMUTABLE AS $$
  SELECT ARRAY[0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400]::float8[]
$$;

-- Per bound: 1 when a run of `duration_ms` falls in it, else 0 (all 0 without a duration).
CREATE FUNCTION aggjobs.runtime_le_counts(duration_ms integer) RETURNS bigint[] LANGUAGE sql IMMUTABLE AS $$
  SELECT array_agg(CASE WHEN duration_ms IS NOT NULL AND duration_ms <= b * 1000 THEN 1 ELSE 0 END::bigint ORDER BY ord)
  FROM unnest(aggjobs.runtime_bounds()) WITH ORDINALITY AS u(b, ord)
$$;

-- AFTER INSERT OR UPDATE OF state, per row: a run that reaches a final state is counted once (final
-- states are never left: every transition out of a state is fenced on queued, retrying or running).
CREATE FUNCTION aggjobs.count_finished_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.state IN ('succeeded', 'failed', 'timed_out', 'revoked')
     AND (TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM NEW.state) THEN
    INSERT INTO aggjobs.run_totals AS t (task, state, runs, timed_runs, duration_sum_ms, le_counts)
    VALUES (NEW.task, NEW.state, 1, CASE WHEN NEW.duration_ms IS NULL THEN 0 ELSE 1 END,
            coalesce(NEW.duration_ms, 0), aggjobs.runtime_le_counts(NEW.duration_ms))
    ON CONFLICT (task, state) DO UPDATE
      SET runs = t.runs + 1, timed_runs = t.timed_runs + EXCLUDED.timed_runs,
          duration_sum_ms = t.duration_sum_ms + EXCLUDED.duration_sum_ms,
          le_counts = (SELECT array_agg(x + y ORDER BY ord)
                       FROM unnest(t.le_counts, EXCLUDED.le_counts) WITH ORDINALITY AS z(x, y, ord));
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER task_runs_count_finished
  AFTER INSERT OR UPDATE OF state ON aggjobs.task_runs
  FOR EACH ROW EXECUTE FUNCTION aggjobs.count_finished_run();

-- Start from the history the database still has.
INSERT INTO aggjobs.run_totals (task, state, runs, timed_runs, duration_sum_ms, le_counts)
SELECT task, state, count(*), count(duration_ms), coalesce(sum(duration_ms), 0),
       (SELECT array_agg(n ORDER BY ord) FROM (
          SELECT ord, count(*) FILTER (WHERE r2.duration_ms <= b * 1000) AS n
          FROM unnest(aggjobs.runtime_bounds()) WITH ORDINALITY AS u(b, ord)
          CROSS JOIN aggjobs.task_runs r2
          WHERE r2.task = r.task AND r2.state = r.state GROUP BY ord) per_bound)
FROM aggjobs.task_runs r
WHERE state IN ('succeeded', 'failed', 'timed_out', 'revoked')
GROUP BY task, state;
