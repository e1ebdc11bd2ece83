import { startWorker, type WorkerHandle } from '../src/runtime/index.ts';
import { backfillId } from '../src/tasks/index.ts';
import { timed } from './stats.ts';
import {
  benchRuntime,
  benchWorkerOptions,
  forgetRuns,
  type Backend,
  type BenchDatabase,
} from './runtime-harness.ts';

export interface BackfillScaling {
  /** Wall time of the whole backfill (enqueue → its summing-up run finished), ms, by worker count. */
  byWorkers: Map<number, number>;
  /** Where that time went, from the runs' records, by worker count. */
  breakdown: Map<number, BackfillBreakdown>;
  days: number;
}

/**
 * Where a backfill's wall time went, read from its runs' records before they are forgotten:
 * - `refreshMs`: the engine's refreshes (the sum of every window's rollups' `durationMs`: session,
 *   lock, state, the window statement and the state update; not the commit nor the unlock);
 * - `windowRunsMs`: the window runs' own durations (started → finished in aggjobs.task_runs: the
 *   refreshes plus the window's claim and `done` statements, the commits and the run's records);
 * - `wallMs − windowRunsMs` (with one worker, whose runs do not overlap): the job system around the
 *   runs (enqueue, the flow, the expand, claims and finishes between runs, the summing-up run, and
 *   the poll for the result, every 100 ms).
 */
export interface BackfillBreakdown {
  wallMs: number;
  windows: number;
  windowRunsMs: number;
  refreshMs: number;
  /** Per rollup: the sum of its refreshes' durationMs. */
  byRollup: Record<string, number>;
}

async function readBreakdown(db: BenchDatabase, runId: string, wallMs: number): Promise<BackfillBreakdown> {
  const { rows } = await db.pool.query<{ duration_ms: number | null; result: unknown }>(
    `SELECT duration_ms, result FROM aggjobs.task_runs WHERE parent_id = $1 AND task = 'backfill_window'`,
    [runId],
  );
  const byRollup: Record<string, number> = {};
  let refreshMs = 0;
  for (const row of rows) {
    const rollups = (row.result as { rollups?: Array<{ rollup: string; durationMs: number }> } | null)
      ?.rollups;
    for (const r of rollups ?? []) {
      byRollup[r.rollup] = (byRollup[r.rollup] ?? 0) + r.durationMs;
      refreshMs += r.durationMs;
    }
  }
  return {
    wallMs,
    windows: rows.length,
    windowRunsMs: rows.reduce((s, r) => s + (r.duration_ms ?? 0), 0),
    refreshMs,
    byRollup,
  };
}

const iso = (d: Date): string => d.toISOString().slice(0, 19);

/**
 * `backfill_aggregations(start, end, 'hourly')` over the last `days` days of the engine data set, as
 * a user enqueues it: it fans out into one `backfill_window` run per day (each recomputes the three
 * hourly rollups over 24 hours), then sums up. Timed with 1 worker and with 2 workers (each
 * concurrency 1, consuming the aggregation queue), the broker on `backend`. Rerunning a completed
 * backfill recomputes every window, so each run does the same work; the rollups end as they were.
 */
export async function backfillScaling(
  backend: Backend,
  db: BenchDatabase,
  options: { end: Date; days: number; workerCounts: readonly number[]; windowDays?: string },
): Promise<BackfillScaling> {
  const start = new Date(options.end.getTime() - options.days * 86_400_000);
  const args = { start_date: iso(start), end_date: iso(options.end), granularity: 'hourly' } as const;
  // The case's window length, else the user's setting when the bench runs with it, else the default.
  const windowDays = options.windowDays ?? process.env.BACKFILL_WINDOW_DAYS;
  const bench = await benchRuntime(backend, db, {
    env: windowDays === undefined ? {} : { BACKFILL_WINDOW_DAYS: windowDays },
  });
  const { runtime } = bench;
  const id = backfillId(args, runtime.settings.analyticsTimezone);
  const byWorkers = new Map<number, number>();
  const breakdown = new Map<number, BackfillBreakdown>();
  try {
    for (const count of options.workerCounts) {
      const workers: WorkerHandle[] = [];
      for (let i = 0; i < count; i += 1) {
        workers.push(
          await startWorker(
            runtime,
            benchWorkerOptions({
              name: `bench-backfill-${backend}-${count}-${i}-${process.pid}`,
              queues: ['aggregation'],
              concurrency: 1,
            }),
          ),
        );
      }
      let runId = '';
      try {
        const wall = await timed(async () => {
          const run = await runtime.enqueue('backfill_aggregations', { kwargs: args });
          runId = run.id;
          await run.get({ timeout: 3600, interval: 0.1 });
        });
        byWorkers.set(count, wall);
        breakdown.set(count, await readBreakdown(db, runId, wall));
      } finally {
        for (const w of workers) await w.close();
        await forgetRuns(db, [runId]);
        await db.pool.query('DELETE FROM aggjobs.workers WHERE name = ANY($1::text[])', [
          workers.map((w) => w.name),
        ]);
      }
    }
  } finally {
    await bench.dispose();
    await db.pool.query('DELETE FROM aggjobs.backfill_windows WHERE backfill_id = $1', [id]);
  }
  return { byWorkers, breakdown, days: options.days };
}
