-- One pair of the per-group state probe (bench/probes/delta-state-setup.sql first): the bench's 1,000
-- scattered updates, then (timed) the rows' new versions read and the deltas applied to the touched
-- groups' rows and state, then (timed) the bare GROUP BY over every row (CREATE TEMP TABLE … AS, as
-- the bench's reference), then the touched groups compared with it (must print 0 mismatches).
\timing off
SET jit = off;
SET work_mem = '64MB';
-- before-images of 1,000 random rows: what a change capture that logs old rows' measure inputs would keep
CREATE TEMP TABLE old_img AS SELECT id, date_trunc('hour', started_at, 'UTC') AS b, workspace_id, status, duration_ms, credits_used, user_id, workflow_id
  FROM public.execution_logs WHERE id IN (SELECT 1 + floor(random() * (SELECT max(id) FROM public.execution_logs))::bigint FROM generate_series(1, 1000));
UPDATE public.execution_logs SET credits_used = credits_used + 1, duration_ms = coalesce(duration_ms, 0) + 1 WHERE id IN (SELECT id FROM old_img);
ANALYZE old_img;
\echo measured: state refresh
\timing on
WITH ch AS (
  SELECT -1 AS s, * FROM old_img
  UNION ALL
  SELECT 1, id, date_trunc('hour', started_at, 'UTC'), workspace_id, status, duration_ms, credits_used, user_id, workflow_id
  FROM public.execution_logs WHERE id IN (SELECT id FROM old_img)
), delta AS (
  SELECT b, workspace_id, sum(s) AS n,
    coalesce(sum(s) FILTER (WHERE status = 'success'), 0) AS ok, coalesce(sum(s) FILTER (WHERE status = 'failed'), 0) AS failed,
    coalesce(sum(s) FILTER (WHERE status = 'timeout'), 0) AS timed_out, coalesce(sum(s) FILTER (WHERE status = 'cancelled'), 0) AS cancelled,
    coalesce(sum(s) FILTER (WHERE status = 'running'), 0) AS running,
    coalesce(sum(s * duration_ms), 0) AS dsum, sum(s * credits_used) AS csum,
    array_agg(duration_ms) FILTER (WHERE s < 0 AND duration_ms IS NOT NULL) AS d_rm, array_agg(duration_ms) FILTER (WHERE s > 0 AND duration_ms IS NOT NULL) AS d_add,
    array_agg(user_id) FILTER (WHERE s < 0) AS u_rm, array_agg(user_id) FILTER (WHERE s > 0) AS u_add,
    array_agg(workflow_id) FILTER (WHERE s < 0) AS w_rm, array_agg(workflow_id) FILTER (WHERE s > 0) AS w_add
  FROM ch GROUP BY 1, 2
), net AS (
  SELECT delta.*, (probe.cancel(u_rm, u_add)).r AS u_rm2, (probe.cancel(u_rm, u_add)).a AS u_add2,
         (probe.cancel(w_rm, w_add)).r AS w_rm2, (probe.cancel(w_rm, w_add)).a AS w_add2 FROM delta
), upd AS (
  UPDATE probe.rollup_state r SET executions_total = r.executions_total + delta.n, executions_succeeded = r.executions_succeeded + delta.ok,
    executions_failed = r.executions_failed + delta.failed, executions_timed_out = r.executions_timed_out + delta.timed_out,
    executions_cancelled = r.executions_cancelled + delta.cancelled, executions_running = r.executions_running + delta.running,
    duration_ms_sum = r.duration_ms_sum + delta.dsum, credits_used = r.credits_used + delta.csum,
    (d, duration_ms_max, duration_ms_p50, duration_ms_p95) = (SELECT nd, nd[cardinality(nd)], probe.pct(nd, 0.5), probe.pct(nd, 0.95)
       FROM (SELECT probe.apply_sorted(r.d, delta.d_rm, delta.d_add) AS nd OFFSET 0) z),
    (uv, uc, distinct_users) = (SELECT (m).v, (m).c, cardinality((m).v) FROM (SELECT CASE WHEN delta.u_rm2 IS NULL AND delta.u_add2 IS NULL THEN ROW(r.uv, r.uc)::probe.vmap ELSE probe.apply_map(r.uv, r.uc, delta.u_rm2, delta.u_add2) END AS m OFFSET 0) x),
    (wv, wc, distinct_workflows) = (SELECT (m).v, (m).c, cardinality((m).v) FROM (SELECT CASE WHEN delta.w_rm2 IS NULL AND delta.w_add2 IS NULL THEN ROW(r.wv, r.wc)::probe.vmap ELSE probe.apply_map(r.wv, r.wc, delta.w_rm2, delta.w_add2) END AS m OFFSET 0) x)
  FROM net delta WHERE r.b = delta.b AND r.workspace_id = delta.workspace_id
  RETURNING 1
)
SELECT count(*) AS groups_updated FROM upd;
\echo recompute of the same groups from the source (what the engine does, no write):
SELECT count(*), sum(m.p50) FROM (SELECT DISTINCT b, workspace_id FROM old_img) g CROSS JOIN LATERAL (
  SELECT count(*), count(*) FILTER (WHERE status = 'success') AS s1, count(*) FILTER (WHERE status = 'failed') s2, count(*) FILTER (WHERE status = 'timeout') s3,
   count(*) FILTER (WHERE status = 'cancelled') s4, count(*) FILTER (WHERE status = 'running') s5, sum(duration_ms)::bigint, max(duration_ms),
   percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) p50, percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms), sum(credits_used), count(DISTINCT user_id), count(DISTINCT workflow_id)
  FROM public.execution_logs s WHERE s.workspace_id = g.workspace_id AND s.started_at >= g.b AND s.started_at < g.b + interval '1 hour') m;
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
\timing off
\echo exactness: touched groups differing from a GROUP BY over their source rows (must be 0):
SELECT count(*) AS mismatches FROM (SELECT b, workspace_id, executions_total, executions_succeeded, executions_failed, executions_timed_out, executions_cancelled, executions_running, duration_ms_sum, duration_ms_max, duration_ms_p50, duration_ms_p95, credits_used, distinct_users, distinct_workflows FROM probe.rollup_state) r JOIN ref USING (b, workspace_id)
WHERE (r.*)::text IS DISTINCT FROM (ref.*)::text AND (b, workspace_id) IN (SELECT b, workspace_id FROM old_img);
COMMIT;
DROP TABLE old_img;
