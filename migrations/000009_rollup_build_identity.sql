-- What built each rollup's rows (README "What built a rollup's rows"). A refresh compares these
-- with the zone, definition and cluster it runs with, before it writes anything: on a difference
-- it refuses and names `aggjobs rollups rebuild`. NULL: not recorded yet (a rollup never refreshed,
-- or an install from before this migration); the next refresh records the identity it runs with.
--   built_timezone:          ANALYTICS_TIMEZONE the buckets were cut in.
--   built_fingerprint:       hash of the definition's canonical form (built_definition): source, time
--                            column, bucket expression, dimensions, measures; not whitespace or order.
--   built_definition:        that canonical form, to say what changed (old -> new).
--   built_system_identifier: pg_control_system().system_identifier of the cluster whose transaction
--                            ids `snapshot`, `horizon` and the sources' aggjobs_xid belong to.
ALTER TABLE aggjobs.rollup_state
  ADD COLUMN built_timezone          text,
  ADD COLUMN built_fingerprint       text,
  ADD COLUMN built_definition        jsonb,
  ADD COLUMN built_system_identifier bigint;
