-- Probe (2026-12-02): per-group state kept beside a rollup's row, updated by deltas, for the 1,000
-- scattered updates of issue 12 (execution_metrics_hourly, UTC, 13 measures). Exact: percentiles from
-- each group's durations kept as a sorted int[] (one occurrence removed / inserted by binary search,
-- width_bucket), distinct counts from (value, count) maps, counts and sums by deltas, max from the
-- sorted array. Nothing here is the engine: it is the design measured before it is built.
-- Setup (once, ~2 min on the full set): psql -h 127.0.0.1 aggjobs_bench_full -f bench/probes/delta-state-setup.sql
-- Then pairs: for i in $(seq 10); do psql -h 127.0.0.1 aggjobs_bench_full -f bench/probes/delta-state-pair.sql; done
-- Drop: DROP SCHEMA probe CASCADE. Results: bench/report.md, "The 1,000 updates: per-group state, probed".
\timing on
SET work_mem = '256MB';
SET jit = off;
DROP SCHEMA IF EXISTS probe CASCADE;
CREATE SCHEMA probe;
-- the reference: bare GROUP BY of the 13 measures (what the bench divides by)
CREATE TABLE probe.rollup AS
SELECT date_trunc('hour', started_at, 'UTC') AS b, workspace_id,
  count(*) AS executions_total, count(*) FILTER (WHERE status = 'success') AS executions_succeeded,
  count(*) FILTER (WHERE status = 'failed') AS executions_failed, count(*) FILTER (WHERE status = 'timeout') AS executions_timed_out,
  count(*) FILTER (WHERE status = 'cancelled') AS executions_cancelled, count(*) FILTER (WHERE status = 'running') AS executions_running,
  sum(duration_ms)::bigint AS duration_ms_sum, max(duration_ms) AS duration_ms_max,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS duration_ms_p50,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS duration_ms_p95,
  sum(credits_used) AS credits_used, count(DISTINCT user_id) AS distinct_users, count(DISTINCT workflow_id) AS distinct_workflows
FROM public.execution_logs GROUP BY 1, 2;
-- the state
CREATE TEMP TABLE state AS
SELECT g.b, g.workspace_id, g.d, u.uv, u.uc, w.wv, w.wc FROM
 (SELECT date_trunc('hour', started_at, 'UTC') AS b, workspace_id,
         coalesce(array_agg(duration_ms ORDER BY duration_ms) FILTER (WHERE duration_ms IS NOT NULL), '{}') AS d
  FROM public.execution_logs GROUP BY 1, 2) g
 JOIN (SELECT b, workspace_id, array_agg(user_id ORDER BY user_id) AS uv, array_agg(c ORDER BY user_id) AS uc
       FROM (SELECT date_trunc('hour', started_at, 'UTC') AS b, workspace_id, user_id, count(*)::int AS c FROM public.execution_logs GROUP BY 1, 2, 3) x GROUP BY 1, 2) u USING (b, workspace_id)
 JOIN (SELECT b, workspace_id, array_agg(workflow_id ORDER BY workflow_id) AS wv, array_agg(c ORDER BY workflow_id) AS wc
       FROM (SELECT date_trunc('hour', started_at, 'UTC') AS b, workspace_id, workflow_id, count(*)::int AS c FROM public.execution_logs GROUP BY 1, 2, 3) x GROUP BY 1, 2) w USING (b, workspace_id);
-- the rollup's rows with their state beside them (fillfactor 70: the updates stay HOT)
CREATE TABLE probe.rollup_state WITH (fillfactor = 70) AS
SELECT r.*, s.d, s.uv, s.uc, s.wv, s.wc FROM probe.rollup r JOIN state s USING (b, workspace_id);
ALTER TABLE probe.rollup_state ADD PRIMARY KEY (b, workspace_id);
DROP TABLE probe.rollup;
VACUUM ANALYZE probe.rollup_state;
SELECT pg_size_pretty(pg_total_relation_size('probe.rollup_state')) AS size, count(*) AS groups FROM probe.rollup_state;

-- multiset of sorted values: remove one occurrence of each `removed`, insert each `added`, keeping order
CREATE FUNCTION probe.apply_sorted(d int[], removed int[], added int[]) RETURNS int[] LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE v int; k int;
BEGIN
  FOREACH v IN ARRAY coalesce(removed, '{}') LOOP
    k := width_bucket(v, d);
    IF k = 0 OR d[k] <> v THEN RAISE EXCEPTION 'value % not in state', v; END IF;
    d := d[1:k-1] || d[k+1:];
  END LOOP;
  FOREACH v IN ARRAY coalesce(added, '{}') LOOP
    k := width_bucket(v, d);
    d := d[1:k] || v || d[k+1:];
  END LOOP;
  RETURN d;
END $$;
-- (value, count) map kept as two arrays sorted by value
CREATE TYPE probe.vmap AS (v bigint[], c int[]);
CREATE FUNCTION probe.apply_map(vs bigint[], cs int[], removed bigint[], added bigint[]) RETURNS probe.vmap LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE x bigint; k int;
BEGIN
  FOREACH x IN ARRAY coalesce(removed, '{}') LOOP
    k := array_position(vs, x);
    IF k IS NULL THEN RAISE EXCEPTION 'value % not in map', x; END IF;
    IF cs[k] = 1 THEN vs := vs[1:k-1] || vs[k+1:]; cs := cs[1:k-1] || cs[k+1:];
    ELSE cs[k] := cs[k] - 1; END IF;
  END LOOP;
  FOREACH x IN ARRAY coalesce(added, '{}') LOOP
    k := array_position(vs, x);
    IF k IS NULL THEN
      k := width_bucket(x, vs);
      vs := vs[1:k] || x || vs[k+1:]; cs := cs[1:k] || 1 || cs[k+1:];
    ELSE cs[k] := cs[k] + 1; END IF;
  END LOOP;
  RETURN ROW(vs, cs)::probe.vmap;
END $$;
-- percentile_cont over a sorted array, as PostgreSQL computes it (float8)
CREATE FUNCTION probe.pct(d int[], p float8) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN cardinality(d) = 0 THEN NULL
    WHEN floor(p * (cardinality(d) - 1)) = ceil(p * (cardinality(d) - 1)) THEN d[1 + floor(p * (cardinality(d) - 1))::int]::float8
    ELSE d[1 + floor(p * (cardinality(d) - 1))::int]::float8 + ((p * (cardinality(d) - 1)) - floor(p * (cardinality(d) - 1))) * (d[1 + ceil(p * (cardinality(d) - 1))::int]::float8 - d[1 + floor(p * (cardinality(d) - 1))::int]::float8) END $$;
-- a multiset change with what it both removes and adds taken out
CREATE FUNCTION probe.cancel(removed anyarray, added anyarray, OUT r anyarray, OUT a anyarray) LANGUAGE sql IMMUTABLE AS $$
  SELECT (SELECT array_agg(v) FROM (SELECT unnest(removed) EXCEPT ALL SELECT unnest(added)) x(v)),
         (SELECT array_agg(v) FROM (SELECT unnest(added) EXCEPT ALL SELECT unnest(removed)) x(v)) $$;
-- check: the state reproduces the reference's percentiles and distinct counts everywhere
SELECT count(*) FILTER (WHERE r.duration_ms_p50 IS DISTINCT FROM probe.pct(s.d, 0.5) OR r.duration_ms_p95 IS DISTINCT FROM probe.pct(s.d, 0.95)
   OR r.distinct_users <> cardinality(s.uv) OR r.distinct_workflows <> cardinality(s.wv) OR r.duration_ms_max IS DISTINCT FROM s.d[cardinality(s.d)]) AS mismatches
FROM probe.rollup_state r JOIN state s USING (b, workspace_id);
