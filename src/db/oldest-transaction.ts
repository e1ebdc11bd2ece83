import type { Queryable } from './pool.ts';

export interface OpenTransaction {
  ageSeconds: number;
  pid: number;
  applicationName: string;
  database: string | null;
}

/**
 * The oldest open transaction of the server, other than this session's: it holds every
 * change-capture horizon back (rows it writes are not folded in until it ends). Transaction ids are
 * cluster-wide, so one in another database of the server counts too. Undefined when none is open.
 */
export async function oldestOpenTransaction(db: Queryable): Promise<OpenTransaction | undefined> {
  const { rows } = await db.query<{ age_s: number; pid: number; app: string; db: string | null }>(
    `SELECT extract(epoch FROM now() - xact_start)::float8 AS age_s, pid, application_name AS app, datname AS db
     FROM pg_stat_activity
     WHERE (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL) AND pid <> pg_backend_pid()
       AND xact_start IS NOT NULL
     ORDER BY xact_start LIMIT 1`,
  );
  const row = rows[0];
  return row === undefined
    ? undefined
    : { ageSeconds: row.age_s, pid: row.pid, applicationName: row.app, database: row.db };
}
