import type { Queryable } from '../db/index.ts';
import { runApplicationName, runSessionPrefix } from './thread-protocol.ts';

/**
 * Terminates the database sessions of a run's attempt, or of every attempt of the run when
 * `attempt` is undefined: their statements end, PostgreSQL rolls back and releases their locks.
 * Used when a run is killed (hard limit, terminate), taken over, or settled after its worker died
 * (a session of a dead worker waiting on a lock would otherwise commit whenever the lock goes).
 * Returns how many were terminated; never throws.
 */
export async function terminateRunSessions(db: Queryable, runId: string, attempt?: number): Promise<number> {
  const { rowCount } = await db
    .query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE pid <> pg_backend_pid()
         AND (($2::text IS NOT NULL AND application_name = $2)
              OR ($2::text IS NULL AND left(application_name, length($1)) = $1))`,
      [runSessionPrefix(runId), attempt === undefined ? null : runApplicationName(runId, attempt)],
    )
    .catch(() => ({ rowCount: 0 }));
  return rowCount ?? 0;
}
