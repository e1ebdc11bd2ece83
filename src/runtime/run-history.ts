import type { Queryable } from '../db/index.ts';
import type { RunHistory } from '../tasks/index.ts';

/**
 * The run history as tasks see it (the cleanup and health checks, a backfill window's start): the
 * only way tasks read or change rows of aggjobs.task_runs, beat_slots and workers.
 */
export function runHistory(db: Queryable): RunHistory {
  return {
    async prune(days) {
      // $1 days. Runs in progress stay whatever their age.
      const runs = await db.query(
        `DELETE FROM aggjobs.task_runs
         WHERE enqueued_at < now() - make_interval(days => $1) AND state NOT IN ('queued', 'running', 'retrying')`,
        [days],
      );
      await db.query('DELETE FROM aggjobs.beat_slots WHERE slot < now() - make_interval(days => $1)', [days]);
      await db.query(`DELETE FROM aggjobs.workers WHERE last_heartbeat < now() - interval '1 day'`);
      return runs.rowCount ?? 0;
    },

    async lastSuccesses(tasks) {
      // $1 tasks
      const { rows } = await db.query<{
        task: string | null;
        last_success: Date | null;
        first_run: Date | null;
        now: Date;
      }>(
        `SELECT s.task, s.last_success, f.first_run, now() AS now
         FROM (SELECT min(enqueued_at) AS first_run FROM aggjobs.task_runs) f
         LEFT JOIN (SELECT task, max(finished_at) AS last_success FROM aggjobs.task_runs
                    WHERE task = ANY($1::text[]) AND state = 'succeeded' GROUP BY task) s ON true`,
        [tasks],
      );
      const last = new Map<string, Date>();
      for (const r of rows) if (r.task !== null && r.last_success !== null) last.set(r.task, r.last_success);
      return { last, firstRun: rows[0]?.first_run ?? null, now: rows[0]?.now ?? new Date() };
    },

    async startParent(childRunId, within = db) {
      // $1 the child run. Its parent's claimRun counts (and limits) attempts when its job starts;
      // until then it is running without a lease, waiting for its children.
      await within.query(
        `UPDATE aggjobs.task_runs p
         SET state = 'running', state_changed_at = now(),
             started_at = coalesce(p.started_at,
                                   (SELECT min(s.started_at) FROM aggjobs.task_runs s WHERE s.parent_id = p.id),
                                   now())
         FROM aggjobs.task_runs c WHERE c.id = $1 AND p.id = c.parent_id AND p.state = 'queued'`,
        [childRunId],
      );
    },

    async unfixedFailures() {
      const { rows } = await db.query<{ task: string; n: number }>(
        `SELECT f.task, count(*)::int AS n FROM aggjobs.task_runs f
         WHERE f.state IN ('failed', 'timed_out') AND f.finished_at > now() - interval '1 hour'
           AND NOT EXISTS (SELECT 1 FROM aggjobs.task_runs s
                           WHERE s.task = f.task AND s.args = f.args AND s.state = 'succeeded'
                             AND s.finished_at > f.finished_at)
         GROUP BY f.task ORDER BY f.task`,
      );
      return rows;
    },

    async queueService(limits) {
      // $1 live seconds, $2 due seconds, $3 stuck seconds
      const { rows } = await db.query<{ queue: string; due: number; stuck: number; liveWorkers: number }>(
        `WITH live AS (
           SELECT unnest(queues) AS queue, count(*) AS n FROM aggjobs.workers
           WHERE stopped_at IS NULL AND last_heartbeat > now() - make_interval(secs => $1) GROUP BY 1
         ), open AS (
           SELECT queue,
                  count(*) FILTER (WHERE state IN ('queued', 'retrying')
                                     AND coalesce(not_before, state_changed_at) < now() - make_interval(secs => $2)) AS due,
                  count(*) FILTER (WHERE state = 'running'
                                     AND lease_expires_at < now() - make_interval(secs => $3)) AS stuck
           FROM aggjobs.task_runs WHERE state IN ('queued', 'retrying', 'running') GROUP BY queue
         )
         SELECT open.queue, open.due::int AS due, open.stuck::int AS stuck, coalesce(live.n, 0)::int AS "liveWorkers"
         FROM open LEFT JOIN live USING (queue) ORDER BY open.queue`,
        [limits.liveSeconds, limits.dueSeconds, limits.stuckSeconds],
      );
      return rows;
    },
  };
}
