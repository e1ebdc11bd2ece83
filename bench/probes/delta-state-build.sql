-- Probe (2026-12-02): what building the per-group state costs, beside the bare GROUP BY (the write
-- cost of the design in delta-state-setup.sql, paid by a backfill or a rebuild of a rollup that keeps
-- it). One pair: the bare GROUP BY of execution_metrics_hourly's 13 measures over every row, then the
-- same with the state as three sorted arrays per group (durations, users, workflows: the distinct
-- counts then kept by the apply, a value's first or last occurrence), both CREATE TEMP TABLE … AS.
-- for i in $(seq 3); do psql -h 127.0.0.1 aggjobs_bench_full -f bench/probes/delta-state-build.sql; done
SET jit = off;
SET work_mem = '64MB';
\timing on
\echo reference: bare GROUP BY
BEGIN;
CREATE TEMP TABLE ref ON COMMIT DROP AS
SELECT date_trunc('hour', started_at, 'UTC') AS b, workspace_id,
  count(*) AS executions_total, count(*) FILTER (WHERE status = 'success') AS executions_succeeded,
  count(*) FILTER (WHERE status = 'failed') AS executions_failed, count(*) FILTER (WHERE status = 'timeout') AS executions_timed_out,
  count(*) FILTER (WHERE status = 'cancelled') AS executions_cancelled, count(*) FILTER (WHERE status = 'running') AS executions_running,
  sum(duration_ms)::bigint AS duration_ms_sum, max(duration_ms) AS duration_ms_max,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS duration_ms_p50,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS duration_ms_p95,
  sum(credits_used) AS credits_used, count(DISTINCT user_id) AS distinct_users, count(DISTINCT workflow_id) AS distinct_workflows
FROM public.execution_logs GROUP BY 1, 2;
COMMIT;
\echo measured: GROUP BY with the state
BEGIN;
CREATE TEMP TABLE with_state ON COMMIT DROP AS
SELECT date_trunc('hour', started_at, 'UTC') AS b, workspace_id,
  count(*) AS executions_total, count(*) FILTER (WHERE status = 'success') AS executions_succeeded,
  count(*) FILTER (WHERE status = 'failed') AS executions_failed, count(*) FILTER (WHERE status = 'timeout') AS executions_timed_out,
  count(*) FILTER (WHERE status = 'cancelled') AS executions_cancelled, count(*) FILTER (WHERE status = 'running') AS executions_running,
  sum(duration_ms)::bigint AS duration_ms_sum, max(duration_ms) AS duration_ms_max,
  percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS duration_ms_p50,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS duration_ms_p95,
  sum(credits_used) AS credits_used, count(DISTINCT user_id) AS distinct_users, count(DISTINCT workflow_id) AS distinct_workflows,
  array_agg(duration_ms ORDER BY duration_ms) FILTER (WHERE duration_ms IS NOT NULL) AS d,
  array_agg(user_id ORDER BY user_id) AS u, array_agg(workflow_id ORDER BY workflow_id) AS w
FROM public.execution_logs GROUP BY 1, 2;
COMMIT;
