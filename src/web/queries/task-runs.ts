import type { Queryable } from '../../db/index.ts';
import { runFromRow, type RunRecord, type RunRow, type RunState } from '../../runtime/index.ts';

export interface RunFilter {
  task?: string | undefined;
  state?: RunState | undefined;
  worker?: string | undefined;
  /** Runs enqueued at or after this time. */
  from?: Date | undefined;
  /** Runs enqueued before this time. */
  to?: Date | undefined;
  /** Text searched (case-insensitive) in the id, args, result and error. */
  q?: string | undefined;
  /** Only runs without a parent: a backfill's window runs are left out (and counted on their parent). */
  topLevel?: boolean | undefined;
}

/** `%text%` for ILIKE, with the pattern characters of the text escaped. */
function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * One page of the run history, newest first, with the dashboard's filters. Fetches one row more
 * than asked to tell whether another page follows.
 */
export async function searchRuns(
  db: Queryable,
  filter: RunFilter,
  page: { limit: number; offset: number },
): Promise<{ runs: RunRecord[]; hasMore: boolean }> {
  // $1 task, $2 state, $3 worker, $4 from, $5 to, $6 ILIKE pattern, $7 limit, $8 offset,
  // $9 top-level runs only
  const { rows } = await db.query<RunRow>(
    `SELECT * FROM aggjobs.task_runs
     WHERE ($1::text IS NULL OR task = $1) AND ($2::text IS NULL OR state = $2)
       AND ($3::text IS NULL OR worker = $3)
       AND ($4::timestamptz IS NULL OR enqueued_at >= $4) AND ($5::timestamptz IS NULL OR enqueued_at < $5)
       AND ($6::text IS NULL OR id ILIKE $6 OR args::text ILIKE $6 OR result::text ILIKE $6 OR error ILIKE $6)
       AND (NOT $9::boolean OR parent_id IS NULL)
     ORDER BY enqueued_at DESC, id DESC LIMIT $7 OFFSET $8`,
    [
      filter.task ?? null,
      filter.state ?? null,
      filter.worker ?? null,
      filter.from ?? null,
      filter.to ?? null,
      filter.q === undefined || filter.q === '' ? null : likePattern(filter.q),
      page.limit + 1,
      page.offset,
      filter.topLevel === true,
    ],
  );
  return { runs: rows.slice(0, page.limit).map(runFromRow), hasMore: rows.length > page.limit };
}

/** How many child runs each of these runs has (a backfill's windows); runs without any are absent. */
export async function childCounts(db: Queryable, parentIds: readonly string[]): Promise<Map<string, number>> {
  if (parentIds.length === 0) return new Map();
  // $1 parent run ids
  const { rows } = await db.query<{ parent_id: string; n: string }>(
    `SELECT parent_id, count(*) AS n FROM aggjobs.task_runs WHERE parent_id = ANY($1::text[]) GROUP BY parent_id`,
    [parentIds],
  );
  return new Map(rows.map((r) => [r.parent_id, Number(r.n)]));
}

/** Failed and timed-out runs that finished in the last `hours`, newest first. */
export async function recentFailures(db: Queryable, hours: number, limit = 20): Promise<RunRecord[]> {
  // $1 hours, $2 limit
  const { rows } = await db.query<RunRow>(
    `SELECT * FROM aggjobs.task_runs
     WHERE state IN ('failed', 'timed_out') AND finished_at > now() - make_interval(hours => $1)
     ORDER BY finished_at DESC LIMIT $2`,
    [hours, limit],
  );
  return rows.map(runFromRow);
}

/** Distinct worker names seen in the run history (for the filter), newest first. */
export async function knownWorkers(db: Queryable): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    'SELECT name FROM aggjobs.workers ORDER BY last_heartbeat DESC LIMIT 100',
  );
  return rows.map((r) => r.name);
}
