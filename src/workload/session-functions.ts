import type { Queryable } from '../db/index.ts';

/**
 * The random draws of the workload, as SQL functions in the session's temporary schema (they vanish
 * with the connection and never touch the application's schema). They are plain `LANGUAGE sql`
 * expressions, so the planner inlines them into the generating statements.
 *
 * Determinism: every draw is a hash of (row number, stream, seed) — `hashint8extended`, the stable
 * hash PostgreSQL uses for hash partitioning — not `random()`, so a statement gives the same rows
 * whatever its plan, parallel workers or session state. A "stream" numbers the independent draws of
 * one row (its time, its workspace, its status, …).
 */
const functions = [
  // A uniform draw in [0, 1): the low 52 bits of the hash, scaled. $1 row number, $2 stream, $3 seed.
  `CREATE OR REPLACE FUNCTION pg_temp.workload_uniform(n bigint, stream integer, seed bigint)
     RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT (hashint8extended(n, seed * 256 + stream) & 4503599627370495)::double precision
                  / 4503599627370496 $$`,

  // A workspace rank from 1 (busiest) to n, Zipf-like with exponent 1.1: the inverse CDF of the
  // density x^-1.1 on [1, n + 1]. With 1,000 workspaces the busiest 100 hold ~74 % of the rows,
  // with 200 the busiest 20 hold ~64 %.
  `CREATE OR REPLACE FUNCTION pg_temp.workload_zipf(u double precision, n bigint)
     RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT LEAST(n, floor(power(1 - u * (1 - power((n + 1)::double precision, -0.1)), -10)))::bigint $$`,

  // A user of a workspace. User u belongs to workspace ((u - 1) % workspaces) + 1, so workspace w
  // has the users w, w + workspaces, w + 2·workspaces, … up to \`users\`; the first ones are the
  // most active (u² skews the pick).
  `CREATE OR REPLACE FUNCTION pg_temp.workload_user(workspace bigint, u double precision, workspaces bigint, users bigint)
     RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT workspace + workspaces * floor(((users - workspace) / workspaces + 1) * u * u)::bigint $$`,

  // Where in a day-long chunk of time an event falls, as a fraction of the chunk, from a uniform
  // draw: denser around noon UTC (2.5 times the mean rate) than around midnight (0.6 times), like
  // a business day. `chunk_start` is the chunk's start in days since the epoch, so the peak stays at
  // noon UTC whatever hour the chunk starts.
  `CREATE OR REPLACE FUNCTION pg_temp.workload_time_of_day(u double precision, chunk_start double precision)
     RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT (u + 0.6 * sin(2 * pi() * u) / (2 * pi()) - chunk_start)
                  - floor(u + 0.6 * sin(2 * pi() * u) / (2 * pi()) - chunk_start) $$`,

  // A log-normal execution time from two uniform draws (Box-Muller): median 2.5 s, 99th percentile
  // ~100 s, clamped to [50 ms, 10 min] (10 min is the workflow time limit).
  `CREATE OR REPLACE FUNCTION pg_temp.workload_duration_ms(u1 double precision, u2 double precision)
     RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT LEAST(600000, GREATEST(50, round(exp(ln(2500) + 1.6 * sqrt(-2 * ln(1 - u1)) * cos(2 * pi() * u2)))))::integer $$`,

  // How late a late row arrives: log-uniform from 1 hour to 3 weeks (504 hours), as an interval.
  `CREATE OR REPLACE FUNCTION pg_temp.workload_lateness(u double precision)
     RETURNS interval LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT exp(ln(3600) + u * ln(504)) * interval '1 second' $$`,

  // The outcome of a finished execution: 85 % success, 10 % failed, 3 % timeout, 2 % cancelled.
  `CREATE OR REPLACE FUNCTION pg_temp.workload_outcome(u double precision)
     RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT CASE WHEN u < 0.85 THEN 'success' WHEN u < 0.95 THEN 'failed'
                       WHEN u < 0.98 THEN 'timeout' ELSE 'cancelled' END $$`,

  // Why a failed execution failed.
  `CREATE OR REPLACE FUNCTION pg_temp.workload_error_type(u double precision)
     RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT (ARRAY['http_error', 'validation_error', 'rate_limited', 'auth_error',
                         'internal_error', 'dependency_unavailable'])[1 + floor(u * 6)::integer] $$`,

  // Credits an execution uses: a base fee plus compute time, priced by the workflow's tier (1–4).
  `CREATE OR REPLACE FUNCTION pg_temp.workload_credits(duration_ms integer, workflow_id bigint)
     RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT round((0.01 + duration_ms * 0.00002 * (1 + workflow_id % 4))::numeric, 4) $$`,

  // An activity event after the first of a session: page_view 45 %, workflow_edit 15 %,
  // workflow_run 15 %, api_call 15 %, settings_change 5 %, login (a new tab) 5 %.
  `CREATE OR REPLACE FUNCTION pg_temp.workload_event_type(u double precision)
     RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT CASE WHEN u < 0.45 THEN 'page_view' WHEN u < 0.60 THEN 'workflow_edit'
                       WHEN u < 0.75 THEN 'workflow_run' WHEN u < 0.90 THEN 'api_call'
                       WHEN u < 0.95 THEN 'settings_change' ELSE 'login' END $$`,

  // The properties of an activity event of a workspace; u picks among a few values.
  `CREATE OR REPLACE FUNCTION pg_temp.workload_event_properties(event_type text, workspace bigint, u double precision)
     RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE
     AS $$ SELECT CASE event_type
       WHEN 'login' THEN jsonb_build_object('client', CASE WHEN u < 0.8 THEN 'web' ELSE 'mobile' END)
       WHEN 'page_view' THEN jsonb_build_object('path',
         (ARRAY['/dashboard', '/workflows', '/runs', '/billing', '/settings'])[1 + floor(u * 5)::integer])
       WHEN 'api_call' THEN jsonb_build_object('endpoint',
         (ARRAY['/v1/runs', '/v1/workflows', '/v1/credits', '/v1/users'])[1 + floor(u * 4)::integer])
       WHEN 'settings_change' THEN jsonb_build_object('setting',
         (ARRAY['notifications', 'members', 'api_keys', 'billing'])[1 + floor(u * 4)::integer])
       ELSE jsonb_build_object('workflow_id', workspace * 100 + floor(100 * u * u * u)::bigint)
     END $$`,
] as const;

/** Creates the workload's functions in this connection's temporary schema. Idempotent. */
export async function installSessionFunctions(client: Queryable): Promise<void> {
  for (const statement of functions) await client.query(statement);
}
