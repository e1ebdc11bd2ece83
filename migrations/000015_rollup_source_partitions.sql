-- The leaf partitions of a rollup's partitioned source as its last incremental refresh (or
-- rebuild) saw them, with their bounds: [{oid, name, from, to}] (from/to NULL for MINVALUE,
-- MAXVALUE or DEFAULT). ATTACH and DETACH PARTITION (and DROP TABLE of a partition) fire no
-- trigger: a partition attached with rows written before the stored snapshot, or one detached
-- with rows, would be missed by change capture for ever. The next refresh compares the list with
-- the current one and recomputes the range of each such partition (src/rollups/partition-changes.ts).
-- NULL (a state row from before this migration): the next refresh records the list without comparing.
ALTER TABLE aggjobs.rollup_state ADD COLUMN source_partitions jsonb;
