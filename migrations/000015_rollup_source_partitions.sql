-- The leaf partitions of a rollup's partitioned source as its last incremental refresh (or
-- rebuild) saw them: {key, partitions: [{oid, attached, name, from, to}]}, `attached` the xmin of
-- the partition's pg_inherits row (new on every ATTACH), from/to its bounds on the time column
-- (NULL: unbounded, DEFAULT, or keyed otherwise), `key` what each refresh compares cheaply. ATTACH and DETACH PARTITION (and DROP TABLE of a partition) fire no
-- trigger: a partition attached with rows written before the stored snapshot, or one detached
-- with rows, would be missed by change capture for ever. The next refresh compares the list with
-- the current one and recomputes the range of each such partition (src/rollups/partition-changes.ts).
-- NULL (a state row from before this migration): the next refresh records the list without comparing.
ALTER TABLE aggjobs.rollup_state ADD COLUMN source_partitions jsonb;
