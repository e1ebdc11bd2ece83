import type { Queryable } from '../../db/index.ts';
import { listRuns, type RunQuery, type RunRecord } from '../../runtime/index.ts';

/** The dashboard's filters: the run log's (listRuns), with the time range's end named `to`. */
export type RunFilter = Omit<RunQuery, 'before' | 'limit' | 'offset'> & { to?: Date | undefined };

/** One page of the run history (the run log's listRuns) and whether another page follows. */
export async function searchRuns(
  db: Queryable,
  filter: RunFilter,
  page: { limit: number; offset: number },
): Promise<{ runs: RunRecord[]; hasMore: boolean }> {
  const { to, ...rest } = filter;
  const runs = await listRuns(db, { ...rest, before: to, limit: page.limit + 1, offset: page.offset });
  return { runs: runs.slice(0, page.limit), hasMore: runs.length > page.limit };
}
