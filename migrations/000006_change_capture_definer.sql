-- The change-capture trigger writes aggjobs.change_log on behalf of whoever updates or deletes
-- source rows. As SECURITY DEFINER (owned by the role that ran the migration) it needs no grant on
-- schema aggjobs for the application's role: without this, every UPDATE and DELETE of an
-- application role without such grants failed with 42501. The search path is pinned so that the
-- function cannot be steered to other objects; every name in it is schema-qualified or built in.
ALTER FUNCTION aggjobs.log_old_groups() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
