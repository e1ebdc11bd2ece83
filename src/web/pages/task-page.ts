import { backfillStatusOf } from '../../tasks/index.ts';
import { isOpenState, retryableStates } from '../../runtime/index.ts';
import { notFound } from '../api/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import { formatDuration, formatJson, html } from '../html/index.ts';
import { settle } from '../queries/index.ts';
import { runJson } from '../services/index.ts';
import {
  actionButton,
  badge,
  card,
  readFailures,
  resultView,
  runHref,
  runsTable,
  timeAt,
} from './components.ts';
import type { PageRequest, PageResult } from './page-types.ts';

/**
 * One run: its args, result, error, attempts, worker, timings; retry, revoke, terminate — or, for a
 * backfill, cancel.
 */
export async function taskPage(ctx: DashboardContext, req: PageRequest, id: string): Promise<PageResult> {
  // Every read is timed (the Control runs on the dashboard's timed pool): a run whose row cannot be
  // read now (a lock held on aggjobs.task_runs) gets a page that says so, not a hung request.
  const [recordRead, childrenRead, retriesRead] = await Promise.all([
    settle('this run', ctx.control.run(id)),
    settle('its child runs', ctx.control.runs({ parentId: id, limit: 1000 })),
    settle('its retries', ctx.control.retriesOf(id)),
  ]);
  if (!recordRead.ok) {
    return {
      title: 'Run',
      live: html`${readFailures([recordRead, childrenRead, retriesRead])}
        <section class="card"><span class="mono">${id}</span></section>`,
    };
  }
  const record = recordRead.value;
  if (record === undefined) throw notFound(`run ${id}`);
  const run = runJson(record, ctx.scrub);
  const children = (childrenRead.ok ? childrenRead.value : []).map((r) => runJson(r, ctx.scrub));
  const retries = retriesRead.ok ? retriesRead.value : [];
  const api = `/api/tasks/${encodeURIComponent(id)}`;
  const buttons = [];
  // A backfill's run waits for its windows: revoking or terminating it alone would leave them running.
  // It has Cancel instead, which cancels its windows (and then the run ends cancelled).
  const backfill = run.task === 'backfill_aggregations';
  const live = isOpenState(run.state);
  const progressRead =
    backfill && live ? await settle('its windows', ctx.control.backfillProgress(id)) : undefined;
  const status = backfill
    ? backfillStatusOf(run, progressRead?.ok === true ? progressRead.value : undefined)
    : run.state;
  // Waiting for its countdown or retry backoff: when it will run, and a way to run it now.
  const delayedUntil =
    (run.state === 'queued' || run.state === 'retrying') &&
    run.notBefore !== null &&
    new Date(run.notBefore).getTime() > Date.now()
      ? run.notBefore
      : null;
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
    if (delayedUntil !== null) {
      buttons.push(actionButton({ url: `${api}/promote`, label: 'Run now', done: 'It may start now.' }));
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
    live: html`${readFailures([childrenRead, retriesRead, ...(progressRead === undefined ? [] : [progressRead])])}
      <section class="card">
        <div class="actions" style="justify-content:space-between">
          <div class="actions">
            <span class="mono">${run.id}</span> ${badge(status)}
            ${delayedUntil === null ? '' : html`<span class="delayed">will run at ${timeAt(delayedUntil)}</span>`}
          </div>
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
            <dd class="mono">${timeAt(run.enqueuedAt)}</dd>
            ${
              delayedUntil === null
                ? ''
                : html`<dt>Will run at</dt>
                    <dd class="mono">${timeAt(delayedUntil)}</dd>`
            }
            <dt>Started</dt>
            <dd class="mono">
              ${timeAt(run.startedAt)}
              ${waited === null ? '' : html`<span class="muted">(waited ${formatDuration(waited)})</span>`}
            </dd>
            <dt>Finished</dt>
            <dd class="mono">${timeAt(run.finishedAt)}</dd>
            <dt>Duration</dt>
            <dd>${formatDuration(run.durationMs)}</dd>
            <dt>Parent</dt>
            <dd>
              ${run.parentId === null ? '—' : html`<a class="mono" href="${runHref(run.parentId)}">${run.parentId}</a>`}
            </dd>
            ${
              record.retryOf === null
                ? ''
                : html`<dt>Retry of</dt>
                    <dd><a class="mono retry-of" href="${runHref(record.retryOf)}">${record.retryOf}</a></dd>`
            }
            ${
              retries.length === 0
                ? ''
                : html`<dt>Retried as</dt>
                    <dd>
                      ${retries.map((r) => html`<div><a class="mono retried-as" href="${runHref(r.id)}">${r.id}</a> ${badge(r.state)}</div>`)}
                    </dd>`
            }
          </dl>`,
        )}
        ${card('Arguments', html`<pre class="args">${formatJson(run.args)}</pre>`)}
      </div>
      ${run.error === null ? '' : card('Error', html`<pre class="error-text">${run.errorStack ?? run.error}</pre>`)}
      ${card('Result', resultView(run.result))}
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
