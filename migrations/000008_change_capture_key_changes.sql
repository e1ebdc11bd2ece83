-- Change capture when an UPDATE changes a row's primary key (README "How change capture works").
--
-- 000003 logged an updated row's old group only when a new row with the same `id` was in another
-- group. A row whose `id` changed had no such partner, so its old group was never logged: after
-- `UPDATE … SET id = id + 20000000, started_at = started_at - interval '3 days'` the old groups kept
-- the moved rows for ever. And a source table whose primary key is not `id` failed every UPDATE.
--
-- The rule now: an old row logs its group unless a new row of the same statement has the same
-- primary key and the same group columns. Such a new row carries this transaction's stamp, so the
-- next refresh recomputes that group anyway; whether the two are "the same row" does not matter,
-- which is what makes a key change or an id swap safe. Every other old row (its key gone, or its
-- key now on a row in another group) is logged. Logging too much costs a recomputed group; logging
-- too little is a wrong row, so a table without a primary key logs every old row.
--
-- INSERT … ON CONFLICT DO UPDATE fires the same AFTER UPDATE statement trigger with the updated rows
-- in old_rows/new_rows (checked on PostgreSQL 15). CREATE OR REPLACE resets the function's
-- attributes, so 000006's SECURITY DEFINER and pinned search path are restated here.

CREATE OR REPLACE FUNCTION aggjobs.log_old_groups() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  source   text := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
  picked   text;
  moved    text;
  same_key text;
BEGIN
  IF current_setting('aggjobs.retention', true) = 'on' THEN
    RETURN NULL;
  END IF;
  SELECT string_agg(format('%L, o.%I', c, c), ', '), string_agg(format('o.%I IS DISTINCT FROM n.%I', c, c), ' OR ')
    INTO picked, moved
    FROM unnest(TG_ARGV) AS c;
  IF TG_OP = 'DELETE' THEN
    EXECUTE format('INSERT INTO aggjobs.change_log (source_table, old_row)
                    SELECT %L, jsonb_build_object(%s) FROM old_rows o', source, picked);
    RETURN NULL;
  END IF;
  SELECT string_agg(format('n.%I = o.%I', a.attname, a.attname), ' AND ')
    INTO same_key
    FROM pg_index i
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
    WHERE i.indrelid = TG_RELID AND i.indisprimary;
  -- installRollups refuses a source without a primary key; one dropped later logs every old row.
  EXECUTE format('INSERT INTO aggjobs.change_log (source_table, old_row)
                  SELECT %L, jsonb_build_object(%s) FROM old_rows o
                  WHERE NOT EXISTS (SELECT FROM new_rows n WHERE %s AND NOT (%s))',
                 source, picked, coalesce(same_key, 'false'), moved);
  RETURN NULL;
END
$$;
