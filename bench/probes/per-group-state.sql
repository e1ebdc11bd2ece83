-- Probe (2026-12-02): would per-group state beat the recompute of the 1,000 scattered updates?
-- `psql -h 127.0.0.1 aggjobs_bench_full -f bench/probes/per-group-state.sql` on the full bench set
-- (npm run bench -- --size full seeds it). Read only on the source; its own tables are dropped at the end.
-- 1. picks 1,000 random executions and builds, for their ~960 hourly groups, the state such a design
--    keeps: the group's durations as a sorted array, its users and workflows as (value, count) maps;
-- 2. applies the bench's update (duration + 1) to the sorted arrays alone and reads p50 and max
--    from them (no sort), rolled back;
-- 3. recomputes the same groups' 13 measures from the source, as the engine does (no write).
-- Measured: step 2 took 163-288 ms (5 runs), step 3 630-972 ms without the covering index
-- (the engine's whole refresh with it: ~460 ms). The goal (1/50 of an 11.9 s full recompute) is
-- ~240 ms for the whole refresh: state kept in SQL arrays is not cheaper enough (bench/report.md).
\timing on
SET work_mem = '64MB';
SET jit = off;
CREATE TABLE probe_pick AS SELECT id, workspace_id, date_trunc('hour', started_at, 'UTC') AS b, duration_ms, user_id, workflow_id
  FROM public.execution_logs WHERE id IN (SELECT 1 + floor(random() * 10000000)::bigint FROM generate_series(1, 1000));
SELECT count(DISTINCT (b, workspace_id)) AS groups FROM probe_pick;
-- state of the touched groups: sorted durations, (user, count) and (workflow, count) multisets
CREATE TABLE probe_state AS
SELECT g.b, g.workspace_id,
  (SELECT array_agg(duration_ms ORDER BY duration_ms) FROM public.execution_logs s WHERE s.workspace_id = g.workspace_id AND s.started_at >= g.b AND s.started_at < g.b + interval '1 hour' AND duration_ms IS NOT NULL) AS d,
  (SELECT jsonb_object_agg(u, c) FROM (SELECT user_id u, count(*) c FROM public.execution_logs s WHERE s.workspace_id = g.workspace_id AND s.started_at >= g.b AND s.started_at < g.b + interval '1 hour' GROUP BY 1) x) AS users,
  (SELECT jsonb_object_agg(w, c) FROM (SELECT workflow_id w, count(*) c FROM public.execution_logs s WHERE s.workspace_id = g.workspace_id AND s.started_at >= g.b AND s.started_at < g.b + interval '1 hour' GROUP BY 1) x) AS workflows
FROM (SELECT DISTINCT b, workspace_id FROM probe_pick) g;
ALTER TABLE probe_state ADD PRIMARY KEY (b, workspace_id);
VACUUM ANALYZE probe_state;
SELECT pg_size_pretty(pg_total_relation_size('probe_state')), sum(cardinality(d)) FROM probe_state;
-- the update: duration +1 for the picked rows (old value out, new in)
CREATE TABLE probe_delta AS SELECT b, workspace_id, array_agg(duration_ms) AS removed, array_agg(duration_ms + 1) AS added FROM probe_pick WHERE duration_ms IS NOT NULL GROUP BY 1, 2;
-- apply: new sorted arrays, then percentiles and max from them; distinct counts from the multisets (unchanged here, read)
BEGIN;
WITH applied AS (
  SELECT probe_state.b, probe_state.workspace_id,
    (SELECT array_agg(v ORDER BY v) FROM (SELECT unnest(probe_state.d) EXCEPT ALL SELECT unnest(probe_delta.removed) UNION ALL SELECT unnest(probe_delta.added)) x(v)) AS d
  FROM probe_state JOIN probe_delta USING (b, workspace_id)
), upd AS (
  UPDATE probe_state SET d = applied.d FROM applied WHERE probe_state.b = applied.b AND probe_state.workspace_id = applied.workspace_id RETURNING probe_state.b
)
SELECT count(*),
  sum(applied.d[1 + floor(0.5 * (cardinality(applied.d) - 1))::int]), sum(applied.d[cardinality(applied.d)]), sum((SELECT count(*) FROM jsonb_object_keys(probe_state.users)))
FROM applied JOIN probe_state USING (b, workspace_id);
ROLLBACK;
-- the same groups recomputed from the source, as the engine does now (measures only, no write)
SELECT count(*), sum(m.p50) FROM (SELECT DISTINCT b, workspace_id FROM probe_pick) g CROSS JOIN LATERAL (
  SELECT count(*), count(*) FILTER (WHERE status = 'success') AS s1, count(*) FILTER (WHERE status = 'failed') s2, count(*) FILTER (WHERE status = 'timeout') s3,
   count(*) FILTER (WHERE status = 'cancelled') s4, count(*) FILTER (WHERE status = 'running') s5, sum(duration_ms)::bigint, max(duration_ms),
   percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) p50, percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms), sum(credits_used), count(DISTINCT user_id), count(DISTINCT workflow_id)
  FROM public.execution_logs s WHERE s.workspace_id = g.workspace_id AND s.started_at >= g.b AND s.started_at < g.b + interval '1 hour') m;
DROP TABLE probe_pick, probe_state, probe_delta;
