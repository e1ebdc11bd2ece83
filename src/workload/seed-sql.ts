/**
 * The statements of the bulk seed. Rows are generated inside PostgreSQL (generate_series, INSERT …
 * SELECT) with the draws of `session-functions.ts`; nothing but parameters and counts cross to Node.
 *
 * Terms: `g` is an execution's global row number (day · executionsPerDay + i), the key of its draws;
 * its *arrival* is when the application wrote it. A late row (3 %) arrives at its arrival time with an
 * event time 1 hour to 3 weeks older (never before the window start). Rows are inserted in arrival
 * order, so ids follow arrival, and late rows are the ones whose time disagrees with their id.
 *
 * `OFFSET 0` keeps a subquery from being pulled up into its parent, where every reference to one of
 * its drawn columns would repeat the draw (measured on a 100,000-row day: 968 ms → 335 ms).
 */

/** Workspace ids 1..$1 with generated names, created 30 to 730 days before $2. $1 workspaces, $2 window start, $3 seed. */
export const insertWorkspaces = `
INSERT INTO public.workspaces (id, name, created_at)
SELECT w,
       (ARRAY['Blue', 'Red', 'Green', 'Silver', 'Golden', 'North', 'South', 'Bright', 'Quiet', 'Rapid',
              'Clever', 'Open', 'Prime', 'Solid', 'Swift', 'Urban'])[1 + floor(pg_temp.workload_uniform(w, 60, $3) * 16)::integer]
         || ' ' ||
       (ARRAY['Harbor', 'Labs', 'Works', 'Systems', 'Analytics', 'Cloud', 'Dynamics', 'Logistics', 'Media',
              'Health', 'Retail', 'Robotics', 'Finance', 'Studio', 'Foods', 'Energy'])[1 + floor(pg_temp.workload_uniform(w, 61, $3) * 16)::integer]
         || ' ' || w,
       $2::timestamptz - (30 + 700 * pg_temp.workload_uniform(w, 62, $3)) * interval '1 day'
FROM generate_series(1, $1::bigint) AS w
ON CONFLICT (id) DO NOTHING`;

/** The working set of one day: its executions with their final outcome, ids drawn in arrival order. */
export const createDayExecutions = `
CREATE TEMPORARY TABLE IF NOT EXISTS workload_day_executions (
  id           bigint NOT NULL,
  g            bigint NOT NULL,
  arrival_at   timestamptz NOT NULL,
  workspace_id bigint NOT NULL,
  user_id      bigint NOT NULL,
  workflow_id  bigint NOT NULL,
  started_at   timestamptz NOT NULL,
  status       text NOT NULL,
  completed_at timestamptz,
  duration_ms  integer,
  credits_used numeric(14,4) NOT NULL,
  error_type   text
)`;

/**
 * Generates one day of executions into the working set. An execution that would end at or after
 * `end` is still running. The ids come from execution_logs' own sequence, taken in arrival order.
 * $1 seed, $2 day (0 = oldest), $3 executions per day, $4 window start, $5 end, $6 workspaces,
 * $7 users, $8 the id sequence of public.execution_logs
 */
export const generateDayExecutions = `
INSERT INTO workload_day_executions
SELECT nextval($8::regclass), ordered.*
FROM (
  WITH drawn AS (
    SELECT g,
           $4::timestamptz + ($2 + pg_temp.workload_time_of_day(pg_temp.workload_uniform(g, 1, $1), extract(epoch FROM $4::timestamptz) / 86400)) * interval '1 day' AS arrival_at,
           pg_temp.workload_uniform(g, 2, $1) < 0.03 AS late,
           pg_temp.workload_lateness(pg_temp.workload_uniform(g, 3, $1)) AS lateness,
           pg_temp.workload_zipf(pg_temp.workload_uniform(g, 4, $1), $6) AS workspace_id,
           pg_temp.workload_uniform(g, 5, $1) AS u_user,
           pg_temp.workload_uniform(g, 6, $1) AS u_workflow,
           pg_temp.workload_outcome(pg_temp.workload_uniform(g, 7, $1)) AS outcome,
           pg_temp.workload_duration_ms(pg_temp.workload_uniform(g, 8, $1), pg_temp.workload_uniform(g, 9, $1)) AS drawn_ms,
           pg_temp.workload_uniform(g, 10, $1) AS u_error
    FROM generate_series($2::bigint * $3 + 1, ($2::bigint + 1) * $3) AS g
    OFFSET 0
  ), timed AS (
    SELECT g, arrival_at, workspace_id, outcome, u_error,
           pg_temp.workload_user(workspace_id, u_user, $6, $7) AS user_id,
           workspace_id * 100 + floor(100 * u_workflow * u_workflow * u_workflow)::bigint AS workflow_id,
           CASE WHEN late THEN arrival_at - LEAST(lateness, arrival_at - $4::timestamptz) ELSE arrival_at END AS started_at,
           CASE WHEN outcome = 'timeout' THEN 600000 ELSE drawn_ms END AS duration_ms
    FROM drawn
    OFFSET 0
  ), ended AS (
    SELECT timed.*,
           started_at + duration_ms * interval '1 millisecond' AS ends_at,
           started_at + duration_ms * interval '1 millisecond' >= $5::timestamptz AS running
    FROM timed
  )
  SELECT g, arrival_at, workspace_id, user_id, workflow_id, started_at,
         CASE WHEN running THEN 'running' ELSE outcome END,
         CASE WHEN NOT running THEN ends_at END,
         CASE WHEN NOT running THEN duration_ms END,
         CASE WHEN running THEN 0 ELSE pg_temp.workload_credits(duration_ms, workflow_id) END,
         CASE WHEN running THEN NULL
              WHEN outcome = 'failed' THEN pg_temp.workload_error_type(u_error)
              WHEN outcome = 'timeout' THEN 'timeout' END
  FROM ended
  ORDER BY arrival_at, g
) AS ordered`;

/**
 * Copies the working set into execution_logs, in id (= arrival) order. With $1 true every row is
 * written as it starts, 'running', for `completeDayExecutions` to finish.
 */
export const insertDayExecutions = `
INSERT INTO public.execution_logs
  (id, workspace_id, user_id, workflow_id, status, started_at, completed_at, duration_ms, credits_used, error_type)
SELECT id, workspace_id, user_id, workflow_id,
       CASE WHEN $1 THEN 'running' ELSE status END, started_at,
       CASE WHEN $1 THEN NULL ELSE completed_at END,
       CASE WHEN $1 THEN NULL ELSE duration_ms END,
       CASE WHEN $1 THEN 0 ELSE credits_used END,
       CASE WHEN $1 THEN NULL ELSE error_type END
FROM workload_day_executions
ORDER BY id`;

/** Finishes the executions inserted as running whose final outcome ended before `end`. */
export const completeDayExecutions = `
UPDATE public.execution_logs AS e
SET status = x.status, completed_at = x.completed_at, duration_ms = x.duration_ms,
    credits_used = x.credits_used, error_type = x.error_type
FROM workload_day_executions AS x
WHERE e.id = x.id AND x.status <> 'running'`;

/**
 * One day of credit transactions, in arrival order: one 'execution' charge per finished execution
 * of the day (ids $8..$9 of execution_logs, read back after they committed); a 'refund' (negative)
 * of ~8 % of the failed and timed-out ones, 10 minutes to 2 days after they ended (about 1 % of all
 * transactions); metered 'api' calls (8 % of the day's executions, Zipf-skewed like them); and one
 * daily 'storage' charge per workspace, bigger for busier ones. Nothing at or after `end`.
 * An execution's arrival is the newest start among the ids up to its own (ids follow arrival; a
 * late row's own start is older), and its charge arrives when it ends.
 * $1 seed, $2 day, $3 executions per day, $4 window start, $5 end, $6 workspaces, $7 users,
 * $8 and $9 the first and last execution id of the day
 */
export const insertDayCredits = `
WITH day_executions AS MATERIALIZED (
  SELECT id, workspace_id, user_id, status, completed_at, duration_ms, credits_used,
         max(started_at) OVER (ORDER BY id) AS arrival_at
  FROM public.execution_logs
  WHERE id BETWEEN $8 AND $9
)
INSERT INTO public.credit_transactions (workspace_id, user_id, execution_id, source, credits, created_at)
SELECT workspace_id, user_id, execution_id, source, credits, created_at
FROM (
  SELECT workspace_id, user_id, id AS execution_id, 'execution' AS source, credits_used AS credits,
         completed_at AS created_at, arrival_at + duration_ms * interval '1 millisecond' AS arrival_at,
         1 AS kind, id AS g
  FROM day_executions
  WHERE status <> 'running'
  UNION ALL
  SELECT workspace_id, user_id, id, 'refund', -credits_used,
         completed_at + exp(ln(600) + pg_temp.workload_uniform(id, 21, $1) * ln(288)) * interval '1 second',
         arrival_at + duration_ms * interval '1 millisecond' + exp(ln(600) + pg_temp.workload_uniform(id, 21, $1) * ln(288)) * interval '1 second',
         2, id
  FROM day_executions
  WHERE status IN ('failed', 'timeout') AND pg_temp.workload_uniform(id, 20, $1) < 0.08
  UNION ALL
  SELECT api.workspace_id, pg_temp.workload_user(api.workspace_id, pg_temp.workload_uniform(a, 32, $1), $6, $7),
         NULL, 'api', round((0.001 + 0.05 * pg_temp.workload_uniform(a, 33, $1))::numeric, 4),
         api.at, api.at, 3, a
  FROM generate_series($2::bigint * ceil($3 * 0.08)::bigint + 1, ($2::bigint + 1) * ceil($3 * 0.08)::bigint) AS a
  CROSS JOIN LATERAL (
    SELECT pg_temp.workload_zipf(pg_temp.workload_uniform(a, 30, $1), $6) AS workspace_id,
           $4::timestamptz + ($2 + pg_temp.workload_time_of_day(pg_temp.workload_uniform(a, 31, $1), extract(epoch FROM $4::timestamptz) / 86400)) * interval '1 day' AS at
    OFFSET 0
  ) AS api
  UNION ALL
  SELECT w, NULL, NULL, 'storage',
         round((0.1 + 10 / sqrt(w) * (0.9 + 0.2 * pg_temp.workload_uniform($2::bigint * $6 + w, 40, $1)))::numeric, 4),
         $4::timestamptz + $2 * interval '1 day' + interval '1 hour' + w * interval '10 milliseconds',
         $4::timestamptz + $2 * interval '1 day' + interval '1 hour' + w * interval '10 milliseconds',
         4, w
  FROM generate_series(1, $6::bigint) AS w
) AS credits
WHERE created_at < $5::timestamptz
ORDER BY arrival_at, kind, g`;

/**
 * One day of user activity, in sessions: $3 / 10 sessions a day (Zipf-skewed workspaces, a user of
 * the workspace), each 1 to 30 events (mean ~5.5) 15 to 105 s apart, starting with a login; 3 % of
 * sessions arrive late (a mobile client syncing). Nothing at or after `end`.
 * $1 seed, $2 day, $3 executions per day, $4 window start, $5 end, $6 workspaces, $7 users
 */
export const insertDayActivity = `
INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id, properties)
SELECT workspace_id, user_id, event_type, occurred_at, session_id,
       pg_temp.workload_event_properties(event_type, workspace_id, pg_temp.workload_uniform(s * 32 + j, 58, $1))
FROM (
  SELECT sessions.*, j,
         CASE WHEN j = 1 THEN 'login'
              ELSE pg_temp.workload_event_type(pg_temp.workload_uniform(s * 32 + j, 57, $1)) END AS event_type,
         ((j - 1) + 0.5 * pg_temp.workload_uniform(s * 32 + j, 56, $1)) * step AS offset_in_session
  FROM (
    SELECT s, workspace_id,
           pg_temp.workload_user(workspace_id, pg_temp.workload_uniform(s, 53, $1), $6, $7) AS user_id,
           'sess_' || to_hex(hashint8extended(s, $1::bigint * 256 + 54)) AS session_id,
           arrival_at,
           CASE WHEN pg_temp.workload_uniform(s, 51, $1) < 0.03
                THEN arrival_at - LEAST(pg_temp.workload_lateness(pg_temp.workload_uniform(s, 52, $1)), arrival_at - $4::timestamptz)
                ELSE arrival_at END AS started_at,
           1 + LEAST(29, floor(-ln(1 - pg_temp.workload_uniform(s, 55, $1)) * 4.5))::integer AS events,
           (15 + 90 * pg_temp.workload_uniform(s, 59, $1)) * interval '1 second' AS step
    FROM generate_series($2::bigint * ceil($3 / 10.0)::bigint + 1, ($2::bigint + 1) * ceil($3 / 10.0)::bigint) AS s
    CROSS JOIN LATERAL (
      SELECT pg_temp.workload_zipf(pg_temp.workload_uniform(s, 50, $1), $6) AS workspace_id,
             $4::timestamptz + ($2 + pg_temp.workload_time_of_day(pg_temp.workload_uniform(s, 49, $1), extract(epoch FROM $4::timestamptz) / 86400)) * interval '1 day' AS arrival_at
      OFFSET 0
    ) AS drawn
    OFFSET 0
  ) AS sessions
  CROSS JOIN LATERAL generate_series(1, sessions.events) AS j
  OFFSET 0
) AS events
CROSS JOIN LATERAL (SELECT started_at + offset_in_session AS occurred_at) AS at
WHERE occurred_at < $5::timestamptz
ORDER BY arrival_at + offset_in_session, s, j`;
