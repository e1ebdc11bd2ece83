import { oldestOpenTransaction } from '../../db/index.ts';
import { runCounts, runTotals, runtimeHistograms, RUNTIME_BUCKETS } from '../../runtime/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import { rollupStatuses } from '../queries/index.ts';
import { PrometheusText } from './prometheus-text.ts';

/**
 * `/metrics`: computed at scrape time from the durable state (aggjobs.task_runs, workers,
 * rollup_state) and the broker, so any dashboard process reports the whole cluster and a restart
 * loses nothing. Counters come from aggjobs.run_totals, which cleanup does not prune; the
 * `aggjobs_task_runs` gauge covers what RUN_HISTORY_DAYS keeps.
 */
export async function collectMetrics(ctx: DashboardContext): Promise<string> {
  const [histograms, totals, counts, queues, workers, rollups, ccLag] = await Promise.all([
    runtimeHistograms(ctx.pool),
    runTotals(ctx.pool),
    runCounts(ctx.pool),
    ctx.control.queueCounts(),
    ctx.control.workers(),
    rollupStatuses(ctx.pool, ctx.rollups),
    oldestOpenTransaction(ctx.pool).then((t) => t?.ageSeconds ?? 0),
  ]);
  const out = new PrometheusText();

  out.family(
    'aggjobs_task_runtime_seconds',
    'histogram',
    'Run time of finished task runs, by task (cumulative: not lowered by run-history pruning).',
  );
  for (const h of histograms) {
    out.histogram(
      'aggjobs_task_runtime_seconds',
      { task: h.task },
      RUNTIME_BUCKETS,
      h.buckets,
      h.sumSeconds,
      h.count,
    );
  }

  out.family(
    'aggjobs_task_runs_finished_total',
    'counter',
    'Runs that reached a final state, by task and state (cumulative: not lowered by run-history pruning).',
  );
  for (const t of totals) {
    out.sample('aggjobs_task_runs_finished_total', { task: t.task, state: t.state }, t.n);
  }

  out.family('aggjobs_task_runs', 'gauge', 'Runs in the run history, by task and state.');
  for (const c of counts) out.sample('aggjobs_task_runs', { task: c.task, state: c.state }, c.n);

  out.family('aggjobs_queue_jobs', 'gauge', 'Jobs in the broker, by queue and state.');
  for (const q of queues) {
    for (const state of ['waiting', 'active', 'delayed', 'failed'] as const) {
      out.sample('aggjobs_queue_jobs', { queue: q.queue, state }, q[state]);
    }
  }
  out.family('aggjobs_queue_paused', 'gauge', '1 when the queue is paused.');
  for (const q of queues) out.sample('aggjobs_queue_paused', { queue: q.queue }, q.paused ? 1 : 0);

  out.family('aggjobs_workers_online', 'gauge', 'Worker processes with a recent heartbeat.');
  out.sample('aggjobs_workers_online', {}, workers.filter((w) => w.online).length);

  out.family(
    'aggjobs_rollup_lag_seconds',
    'gauge',
    'Seconds since the state each rollup reflects; -1 if it never ran.',
  );
  for (const r of rollups) out.sample('aggjobs_rollup_lag_seconds', { table: r.table }, r.lagSeconds ?? -1);

  out.family(
    'aggjobs_change_capture_lag_seconds',
    'gauge',
    'Age of the oldest open transaction: writes it makes are folded into rollups only after it ends.',
  );
  out.sample('aggjobs_change_capture_lag_seconds', {}, Math.round(ccLag));

  return out.toString();
}
