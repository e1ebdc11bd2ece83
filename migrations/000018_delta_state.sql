-- Per-group state for rollups that opt in (`deltaState: true`, docs/delta-state.md): a refresh
-- applies the changed rows to each touched group's row and state instead of reading every row of
-- the group again.

-- The transaction that stored a rollup's snapshot: the rows it wrote hold state as of that
-- snapshot, as do rows written by transactions the snapshot sees (src/rollups/delta-state.ts).
ALTER TABLE aggjobs.rollup_state ADD COLUMN snapshot_xid xid8;

-- Sources whose change capture logs old rows whole (log_old_rows below), and the transaction that
-- made it so (installRollups). A refresh applies deltas only when that transaction is visible in
-- its stored snapshot: every change since was logged whole. A source put back to group columns
-- loses its row, and applying stops until it is whole again and a snapshot has passed.
CREATE TABLE aggjobs.whole_capture (
  source_table text PRIMARY KEY,
  since        xid8 NOT NULL DEFAULT pg_current_xact_id()
);

-- A multiset kept as a sorted array, NULLs left out (as aggregates skip them): one occurrence of
-- each removed value taken out, each added value put in, found by binary search (width_bucket
-- counts the elements <= a value), without a sort. A value both removed and added (an update that
-- kept it) moves nothing and is skipped. `distinct_delta` is how many distinct values it gained
-- (negative: lost). An empty result is NULL, as array_agg over no row. A removed value that is not
-- there means the state and the source disagree: raised, so that nothing is written.
CREATE FUNCTION aggjobs.multiset_apply(sorted anyarray, removed anyarray, added anyarray,
                                       OUT result anyarray, OUT distinct_delta integer)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  j integer;
  k integer;
BEGIN
  result := sorted;
  distinct_delta := 0;
  FOR i IN 1 .. coalesce(cardinality(removed), 0) LOOP
    CONTINUE WHEN removed[i] IS NULL OR added IS NULL;
    j := array_position(added, removed[i]);
    IF j IS NOT NULL THEN
      removed[i] := NULL;
      added[j] := NULL;
    END IF;
  END LOOP;
  FOR i IN 1 .. coalesce(cardinality(removed), 0) LOOP
    CONTINUE WHEN removed[i] IS NULL;
    k := coalesce(width_bucket(removed[i], result), 0);
    IF k = 0 OR result[k] IS DISTINCT FROM removed[i] THEN
      RAISE EXCEPTION 'aggjobs: a removed value (%) is not in the group''s state', removed[i]
        USING HINT = 'the state and the source disagree: rebuild the rollup (aggjobs rollups rebuild --rollup NAME)';
    END IF;
    IF NOT (k > 1 AND result[k - 1] = removed[i]) THEN
      distinct_delta := distinct_delta - 1;
    END IF;
    result := result[1 : k - 1] || result[k + 1 :];
  END LOOP;
  FOR i IN 1 .. coalesce(cardinality(added), 0) LOOP
    CONTINUE WHEN added[i] IS NULL;
    IF result IS NULL THEN
      result := added[1 : 0];
    END IF;
    k := coalesce(width_bucket(added[i], result), 0);
    IF NOT (k > 0 AND result[k] = added[i]) THEN
      distinct_delta := distinct_delta + 1;
    END IF;
    result := result[1 : k] || added[i] || result[k + 1 :];
  END LOOP;
  IF cardinality(result) = 0 THEN
    result := NULL;
  END IF;
END
$$;

-- percentile_cont(fraction) over a sorted array, computed as PostgreSQL's aggregate does
-- (float8: the first value plus the fraction's remainder of the step to the next).
CREATE FUNCTION aggjobs.sorted_percentile_cont(sorted anyarray, fraction double precision)
RETURNS double precision LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  n   integer := coalesce(cardinality(sorted), 0);
  pos double precision;
  lo  integer;
  hi  integer;
BEGIN
  IF n = 0 THEN
    RETURN NULL;
  END IF;
  pos := fraction * (n - 1);
  lo := floor(pos);
  hi := ceil(pos);
  IF lo = hi THEN
    RETURN sorted[lo + 1]::double precision;
  END IF;
  RETURN sorted[lo + 1]::double precision
         + (sorted[hi + 1]::double precision - sorted[lo + 1]::double precision) * (pos - lo);
END
$$;

-- percentile_disc(fraction) over a sorted array: the first value whose position reaches the fraction.
CREATE FUNCTION aggjobs.sorted_percentile_disc(sorted anyarray, fraction double precision)
RETURNS anyelement LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  n integer := coalesce(cardinality(sorted), 0);
BEGIN
  IF n = 0 THEN
    RETURN NULL;
  END IF;
  RETURN sorted[greatest(ceil(fraction * n)::integer, 1)];
END
$$;

-- Change capture of a source with a stateful rollup: every old row of a DELETE or UPDATE whole
-- (its measure inputs and its aggjobs_xid stamp), not only those that left their group as
-- aggjobs.log_old_groups logs. Static SQL: the plan is kept across calls. Retention deletes are
-- not logged (their buckets are frozen), as in log_old_groups. extra_float_digits 3: a float is
-- logged with every digit (a writer's session may round its output), so it reads back equal.
CREATE FUNCTION aggjobs.log_old_rows() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET extra_float_digits = 3 AS $$
DECLARE
  source text := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
BEGIN
  IF current_setting('aggjobs.retention', true) = 'on' THEN
    RETURN NULL;
  END IF;
  INSERT INTO aggjobs.change_log (source_table, old_row) SELECT source, to_jsonb(o) FROM old_rows o;
  RETURN NULL;
END
$$;

-- The same for changes applied by logical replication (replica sessions fire row triggers only,
-- migration 000014): every old row, whole.
CREATE FUNCTION aggjobs.log_replicated_old_row() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET extra_float_digits = 3 AS $$
BEGIN
  IF current_setting('aggjobs.retention', true) = 'on' THEN
    RETURN NULL;
  END IF;
  INSERT INTO aggjobs.change_log (source_table, old_row)
  VALUES (format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME), to_jsonb(OLD));
  RETURN NULL;
END
$$;
