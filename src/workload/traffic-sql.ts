/**
 * One tick of live traffic, in one statement (one transaction): executions start ('running',
 * started_at = now()), due executions complete (UPDATE to their final status, with a credit charge
 * and sometimes a refund), activity events and api/storage credit transactions arrive now, and late
 * rows arrive with event times 1 hour to 3 weeks old (finished executions and activity events).
 * Draws come from `session-functions.ts`, keyed by the row number in the tick and the tick's seed.
 *
 * An execution that has been running for 10 minutes or more times out at started_at + 10 min,
 * whatever its drawn outcome: the time limit of a workflow.
 *
 * $1 tick seed, $2 executions to start, $3 ids to complete, $4 their outcomes, $5 activity events,
 * $6 credit transactions, $7 late executions, $8 late activity events, $9 workspaces, $10 users
 */
export const trafficTick = `
WITH started AS (
  INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at)
  SELECT workspace_id, pg_temp.workload_user(workspace_id, pg_temp.workload_uniform(i, 5, $1), $9, $10),
         workspace_id * 100 + floor(100 * power(pg_temp.workload_uniform(i, 6, $1), 3))::bigint,
         'running', now()
  FROM generate_series(1, $2::integer) AS i
  CROSS JOIN LATERAL (SELECT pg_temp.workload_zipf(pg_temp.workload_uniform(i, 4, $1), $9) AS workspace_id) AS w
  RETURNING id
), finishing AS (
  SELECT e.id, e.workflow_id,
         CASE WHEN timed_out THEN 'timeout' ELSE d.outcome END AS status,
         CASE WHEN timed_out THEN e.started_at + interval '10 minutes' ELSE now() END AS completed_at,
         CASE WHEN timed_out THEN 600000
              ELSE GREATEST(0, round(extract(epoch FROM now() - e.started_at) * 1000))::integer END AS duration_ms,
         pg_temp.workload_uniform(e.id, 10, $1) AS u_error
  FROM unnest($3::bigint[], $4::text[]) AS d (id, outcome)
  JOIN public.execution_logs AS e ON e.id = d.id AND e.status = 'running'
  CROSS JOIN LATERAL (SELECT now() - e.started_at >= interval '10 minutes' AS timed_out) AS t
), completed AS (
  UPDATE public.execution_logs AS e
  SET status = f.status, completed_at = f.completed_at, duration_ms = f.duration_ms,
      credits_used = pg_temp.workload_credits(f.duration_ms, f.workflow_id),
      error_type = CASE WHEN f.status = 'failed' THEN pg_temp.workload_error_type(f.u_error)
                        WHEN f.status = 'timeout' THEN 'timeout' END
  FROM finishing AS f
  WHERE e.id = f.id
  RETURNING e.id, e.workspace_id, e.user_id, e.status, e.credits_used, e.completed_at
), charged AS (
  INSERT INTO public.credit_transactions (workspace_id, user_id, execution_id, source, credits, created_at)
  SELECT workspace_id, user_id, id, 'execution', credits_used, completed_at FROM completed
  UNION ALL
  SELECT workspace_id, user_id, id, 'refund', -credits_used, now() FROM completed
  WHERE status IN ('failed', 'timeout') AND pg_temp.workload_uniform(id, 20, $1) < 0.08
  RETURNING 1
), activity AS (
  INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id, properties)
  SELECT workspace_id, user_id, event_type, occurred_at, session_id,
         pg_temp.workload_event_properties(event_type, workspace_id, pg_temp.workload_uniform(i, 58, $1))
  FROM (
    SELECT i, w.workspace_id,
           pg_temp.workload_user(w.workspace_id, pg_temp.workload_uniform(i, 53, $1), $9, $10) AS user_id,
           pg_temp.workload_event_type(pg_temp.workload_uniform(i, 57, $1)) AS event_type,
           CASE WHEN i > $5 THEN now() - pg_temp.workload_lateness(pg_temp.workload_uniform(i, 52, $1))
                ELSE now() END AS occurred_at,
           'live_' || to_hex(hashint8extended(i, $1::bigint * 256 + 54)) AS session_id
    FROM generate_series(1, $5::integer + $8::integer) AS i
    CROSS JOIN LATERAL (SELECT pg_temp.workload_zipf(pg_temp.workload_uniform(i, 50, $1), $9) AS workspace_id) AS w
  ) AS events
  RETURNING 1
), credited AS (
  INSERT INTO public.credit_transactions (workspace_id, user_id, execution_id, source, credits, created_at)
  SELECT w.workspace_id,
         CASE WHEN api THEN pg_temp.workload_user(w.workspace_id, pg_temp.workload_uniform(i, 32, $1), $9, $10) END,
         NULL, CASE WHEN api THEN 'api' ELSE 'storage' END,
         round(CASE WHEN api THEN 0.001 + 0.05 * pg_temp.workload_uniform(i, 33, $1)
                    ELSE 0.01 + 0.5 * pg_temp.workload_uniform(i, 33, $1) END::numeric, 4),
         now()
  FROM generate_series(1, $6::integer) AS i
  CROSS JOIN LATERAL (
    SELECT pg_temp.workload_zipf(pg_temp.workload_uniform(i, 30, $1), $9) AS workspace_id,
           pg_temp.workload_uniform(i, 31, $1) < 0.7 AS api
  ) AS w
  RETURNING 1
), late AS (
  INSERT INTO public.execution_logs
    (workspace_id, user_id, workflow_id, status, started_at, completed_at, duration_ms, credits_used, error_type)
  SELECT workspace_id, user_id, workflow_id, outcome, started_at,
         started_at + duration_ms * interval '1 millisecond', duration_ms,
         pg_temp.workload_credits(duration_ms, workflow_id),
         CASE WHEN outcome = 'failed' THEN pg_temp.workload_error_type(pg_temp.workload_uniform(i, 10, $1))
              WHEN outcome = 'timeout' THEN 'timeout' END
  FROM (
    SELECT i, w.workspace_id,
           pg_temp.workload_user(w.workspace_id, pg_temp.workload_uniform(i, 5, $1), $9, $10) AS user_id,
           w.workspace_id * 100 + floor(100 * power(pg_temp.workload_uniform(i, 6, $1), 3))::bigint AS workflow_id,
           w.outcome,
           now() - pg_temp.workload_lateness(pg_temp.workload_uniform(i, 3, $1)) AS started_at,
           CASE WHEN w.outcome = 'timeout' THEN 600000
                ELSE pg_temp.workload_duration_ms(pg_temp.workload_uniform(i, 8, $1), pg_temp.workload_uniform(i, 9, $1)) END AS duration_ms
    FROM generate_series(1000001, 1000000 + $7::integer) AS i
    CROSS JOIN LATERAL (
      SELECT pg_temp.workload_zipf(pg_temp.workload_uniform(i, 4, $1), $9) AS workspace_id,
             pg_temp.workload_outcome(pg_temp.workload_uniform(i, 7, $1)) AS outcome
    ) AS w
  ) AS drawn
  RETURNING 1
)
SELECT (SELECT coalesce(json_agg(id ORDER BY id), '[]'::json) FROM started) AS started_ids,
       (SELECT count(*) FROM completed) AS completed,
       (SELECT count(*) FROM charged) AS charged,
       (SELECT count(*) FROM activity) AS activity,
       (SELECT count(*) FROM credited) AS credited,
       (SELECT count(*) FROM late) AS late_executions`;

/** The newest hour's running executions, which a new traffic run adopts and completes. */
export const adoptRunning = `
SELECT id, (extract(epoch FROM started_at) * 1000)::float8 AS started_ms
FROM public.execution_logs
WHERE started_at >= (SELECT max(started_at) FROM public.execution_logs) - interval '1 hour'
  AND status = 'running'
ORDER BY started_at
LIMIT 100000`;

/** The workspace count of the data set: its highest id (ids are 1..n). */
export const workspaceCount = 'SELECT coalesce(max(id), 0)::bigint AS n FROM public.workspaces';
