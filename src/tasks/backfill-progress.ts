import type { Pool } from '../db/index.ts';
import type { Granularity } from './task-args.ts';

export interface BackfillProgress {
  backfillId: string;
  total: number;
  done: number;
  failed: number;
  running: number;
  pending: number;
  cancelled: number;
  /**
   * The rollup refreshes of the backfill: each window refreshes every rollup of its granularity, one
   * transaction each. Done: those of the windows done, and those committed by windows running. A
   * backfill of one window shows its progress here. (A window planned before migration 000017 and
   * not yet claimed counts as one.)
   */
  refreshes: { done: number; total: number };
  /**
   * Seconds until done at the pace of the refreshes committed since the backfill was last planned;
   * undefined before the first.
   */
  etaSeconds: number | undefined;
}

export interface BackfillResult extends BackfillProgress {
  status: 'completed' | 'failed' | 'cancelled';
  granularity: Granularity;
  range: { start: string; end: string };
}

/** How far a backfill's windows are: live, from aggjobs.backfill_windows. */
export async function backfillProgress(pool: Pool, id: string): Promise<BackfillProgress> {
  // $1 backfill id. Per state: the refreshes committed and in all (rollups_total is set when the
  // window is planned or claimed); `paced`: those committed by windows claimed since the backfill
  // was last planned (a plan clears every claim), from `since`, the first such claim.
  const { rows } = await pool.query<{
    state: string;
    n: number;
    refreshed: number;
    refreshes: number;
    paced: number;
    since: Date | null;
    now: Date;
  }>(
    `SELECT state, count(*)::int AS n,
            sum(CASE state WHEN 'done' THEN coalesce(rollups_total, 1) WHEN 'running' THEN cardinality(rollups_refreshed) ELSE 0 END)::int AS refreshed,
            sum(coalesce(rollups_total, 1))::int AS refreshes,
            coalesce(sum(CASE state WHEN 'done' THEN rollups_total WHEN 'running' THEN cardinality(rollups_refreshed) END)
                       FILTER (WHERE claimed_at IS NOT NULL), 0)::int AS paced,
            min(claimed_at) AS since, now() AS now
     FROM aggjobs.backfill_windows WHERE backfill_id = $1 GROUP BY state`,
    [id],
  );
  const n = (state: string): number => rows.find((r) => r.state === state)?.n ?? 0;
  const sum = (f: (r: (typeof rows)[number]) => number): number => rows.reduce((s, r) => s + f(r), 0);
  const refreshes = { done: sum((r) => r.refreshed), total: sum((r) => r.refreshes) };
  const left = sum((r) => (r.state === 'pending' || r.state === 'running' ? r.refreshes - r.refreshed : 0));
  // The time left at the pace so far: from the first claim of this plan to now, per refresh its
  // windows committed; undefined until one has (an earlier run's pace is not this one's).
  const paced = sum((r) => r.paced);
  const claims = rows.flatMap((r) => (r.since === null ? [] : [r.since.getTime()]));
  const elapsed = claims.length > 0 ? (rows[0]?.now.getTime() ?? 0) - Math.min(...claims) : 0;
  return {
    backfillId: id,
    total: sum((r) => r.n),
    done: n('done'),
    failed: n('failed'),
    running: n('running'),
    pending: n('pending'),
    cancelled: n('cancelled'),
    refreshes,
    etaSeconds: paced > 0 && elapsed > 0 ? Math.round(((elapsed / paced) * left) / 1000) : undefined,
  };
}

/**
 * What a backfill run is, as the pages and the API show it. A cancelled backfill's run is `revoked`
 * with a result whose status is `cancelled` (`succeeded` before cancelling ended it revoked); a live
 * run whose windows are being cancelled is `cancelling`.
 */
export type BackfillStatus =
  | 'queued'
  | 'running'
  | 'retrying'
  | 'cancelling'
  | 'succeeded'
  | 'failed'
  | 'timed_out'
  | 'cancelled'
  | 'revoked';

export function backfillStatusOf(
  run: { state: string; result: unknown },
  progress: BackfillProgress | undefined,
): BackfillStatus {
  const resultStatus =
    typeof run.result === 'object' && run.result !== null && 'status' in run.result
      ? run.result.status
      : undefined;
  switch (run.state) {
    case 'queued':
    case 'running':
    case 'retrying':
      return (progress?.cancelled ?? 0) > 0 ? 'cancelling' : run.state;
    case 'succeeded':
    case 'revoked':
      return resultStatus === 'cancelled' ? 'cancelled' : run.state;
    case 'failed':
    case 'timed_out':
      return run.state;
    default:
      return 'failed';
  }
}

/** The progress a finished backfill run recorded in its result (its windows may have changed since). */
export function recordedBackfillProgress(result: unknown): BackfillProgress | undefined {
  if (typeof result !== 'object' || result === null) return undefined;
  const r = result as Partial<BackfillResult>;
  const count = (v: unknown): number => (typeof v === 'number' ? v : 0);
  if (typeof r.backfillId !== 'string' || typeof r.total !== 'number') return undefined;
  return {
    backfillId: r.backfillId,
    total: r.total,
    done: count(r.done),
    failed: count(r.failed),
    running: count(r.running),
    pending: count(r.pending),
    cancelled: count(r.cancelled),
    // A result recorded before migration 000017 has no refreshes: its windows stand for them.
    refreshes:
      typeof r.refreshes?.total === 'number'
        ? { done: count(r.refreshes.done), total: r.refreshes.total }
        : { done: count(r.done), total: r.total },
    etaSeconds: undefined,
  };
}
