import { backfillStatusOf } from '../../tasks/index.ts';
import { retryableStates } from '../../runtime/index.ts';
import { notFound } from '../api/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import { formatDuration, formatJson, formatTime, html } from '../html/index.ts';
import { runJson } from '../services/index.ts';
import { actionButton, badge, card, runHref, runsTable } from './components.ts';
import type { PageRequest, PageResult } from './page-types.ts';

/**
 * One run: its args, result, error, attempts, worker, timings; retry, revoke, terminate — or, for a
 * backfill, cancel.
 */
export async function taskPage(ctx: DashboardContext, req: PageRequest, id: string): Promise<PageResult> {
  const record = await ctx.control.run(id);
  if (record === undefined) throw notFound(`run ${id}`);
  const run = runJson(record, ctx.scrub);
  const children = (await ctx.control.runs({ parentId: id, limit: 1000 })).map((r) => runJson(r, ctx.scrub));
  const api = `/api/tasks/${encodeURIComponent(id)}`;
  const buttons = [];
  // A backfill's run waits for its windows: revoking or terminating it alone would leave them running.
  // It has Cancel instead, which cancels its windows (and then the run ends cancelled).
  const backfill = run.task === 'backfill_aggregations';
  const live = ['queued', 'retrying', 'running'].includes(run.state);
  const status = backfill
    ? backfillStatusOf(run, live ? await ctx.control.backfillProgress(id) : undefined)
    : run.state;
  if (backfill && live) {
    if (req.canWrite && status !== 'cancelling') {
      buttons.push(
        actionButton({
          url: `/api/backfills/${encodeURIComponent(id)}/cancel`,
          label: 'Cancel backfill',
          className: 'danger',
          confirm: 'Cancel this backfill? Windows not started are skipped, running ones terminated.',
          done: 'Cancelled.',
        }),
      );
    }
  } else if (req.canWrite) {
    if ((retryableStates as readonly string[]).includes(run.state)) {
      buttons.push(
        actionButton({
          url: `${api}/retry`,
          label: 'Retry',
          className: 'primary',
          then: '/tasks/{id}',
          confirm: `Run ${run.task} again with the same arguments?`,
        }),
      );
    }
    if (['queued', 'retrying'].includes(run.state)) {
      buttons.push(
        actionButton({
          url: `${api}/revoke`,
          label: 'Revoke',
          className: 'danger',
          confirm: 'Revoke this run? It will not start.',
          done: 'Revoked.',
        }),
      );
    }
    if (run.state === 'running') {
      buttons.push(
        actionButton({
          url: `${api}/terminate`,
          label: 'Terminate',
          className: 'danger',
          confirm: 'Terminate this run now? Its task thread is killed; nothing it did is committed.',
          done: 'Terminate sent.',
        }),
      );
    }
  }
  const waited =
    run.startedAt === null ? null : new Date(run.startedAt).getTime() - new Date(run.enqueuedAt).getTime();

  return {
    title: `${run.task} run`,
    live: html` <section class="card">
        <div class="actions" style="justify-content:space-between">
          <div class="actions"><span class="mono">${run.id}</span> ${badge(status)}</div>
          <div class="actions">${buttons}</div>
        </div>
      </section>
      <div class="grid">
        ${card(
          'Run',
          html`<dl class="props">
            <dt>Task</dt>
            <dd><a href="/tasks?task=${encodeURIComponent(run.task)}">${run.task}</a></dd>
            <dt>Queue</dt>
            <dd>${run.queue}</dd>
            <dt>Worker</dt>
            <dd class="mono">${run.worker ?? '—'}</dd>
            <dt>Attempts</dt>
            <dd>${run.attempts}</dd>
            <dt>Enqueued</dt>
            <dd class="mono">${formatTime(run.enqueuedAt)}</dd>
            <dt>Started</dt>
            <dd class="mono">
              ${formatTime(run.startedAt)}
              ${waited === null ? '' : html`<span class="muted">(waited ${formatDuration(waited)})</span>`}
            </dd>
            <dt>Finished</dt>
            <dd class="mono">${formatTime(run.finishedAt)}</dd>
            <dt>Duration</dt>
            <dd>${formatDuration(run.durationMs)}</dd>
            <dt>Parent</dt>
            <dd>
              ${run.parentId === null ? '—' : html`<a class="mono" href="${runHref(run.parentId)}">${run.parentId}</a>`}
            </dd>
          </dl>`,
        )}
        ${card('Arguments', html`<pre class="args">${formatJson(run.args)}</pre>`)}
      </div>
      ${run.error === null ? '' : card('Error', html`<pre class="error-text">${run.errorStack ?? run.error}</pre>`)}
      ${card('Result', html`<pre class="result">${formatJson(run.result)}</pre>`)}
      ${children.length === 0 ? '' : card(`Child runs (${children.length})`, runsTable(children, { empty: '' }))}
      ${card(
        'Log lines',
        run.logs === null || run.logs.length === 0
          ? html`<p class="muted">
              No lines kept for this run (it has not run in a worker yet, ran with --eager, or its thread was
              killed). The worker's log has every line, tagged with <code>runId</code> =
              <code>${run.id}</code>.
            </p>`
          : html`<pre class="logs">
${run.logs
                .map(
                  (l) =>
                    `${l.time.slice(11, 23)} ${l.level.padEnd(5)} ${l.msg}${l.data === undefined ? '' : ` ${JSON.stringify(l.data)}`}`,
                )
                .join('\n')}</pre>`,
      )}`,
  };
}
