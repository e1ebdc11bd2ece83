import { formatDuration, formatTime, html, type HtmlChild, type SafeHtml } from '../html/index.ts';
import type { QueueCounts } from '../../runtime/index.ts';
import type { Read } from '../queries/index.ts';
import type { RunJson } from '../services/index.ts';

export function badge(state: string, label?: string): SafeHtml {
  return html`<span class="badge ${state}">${label ?? state.replace('_', ' ')}</span>`;
}

export function runHref(id: string): string {
  return `/tasks/${encodeURIComponent(id)}`;
}

/** A button that POSTs to the JSON API through the client script (with the CSRF token). */
export function actionButton(options: {
  url: string;
  label: string;
  body?: unknown;
  confirm?: string;
  className?: string;
  then?: string;
  done?: string;
  input?: string;
}): SafeHtml {
  return html`<button
    type="button"
    class="${options.className ?? ''}"
    data-action="${options.url}"
    data-body="${options.body === undefined ? undefined : JSON.stringify(options.body)}"
    data-confirm="${options.confirm}"
    data-then="${options.then}"
    data-done="${options.done}"
    data-input="${options.input}"
  >
    ${options.label}
  </button>`;
}

export function stat(label: string, value: HtmlChild, extra?: HtmlChild): SafeHtml {
  return html`<div class="stat">
    <div class="label">${label}</div>
    <div class="value">${value}</div>
    ${extra}
  </div>`;
}

export function card(title: HtmlChild, body: HtmlChild): SafeHtml {
  return html`<section class="card">
    <h2>${title}</h2>
    ${body}
  </section>`;
}

/** One-line summary of a JSON value for a table cell (the full value is on the run's page). */
export function summarize(value: unknown, max = 120): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function runsTable(
  runs: readonly RunJson[],
  options: { empty: string; actions?: (run: RunJson) => HtmlChild },
): SafeHtml {
  if (runs.length === 0) return html`<p class="muted">${options.empty}</p>`;
  return html`<table class="runs">
    <thead>
      <tr>
        <th>Task</th>
        <th>State</th>
        <th>Args</th>
        <th>Worker</th>
        <th>Enqueued</th>
        <th class="num">Duration</th>
        <th class="num">Attempts</th>
        <th>Result / error</th>
        ${options.actions === undefined ? '' : html`<th></th>`}
      </tr>
    </thead>
    <tbody>
      ${runs.map(
        (r) =>
          html`<tr data-run="${r.id}" data-state="${r.state}">
            <td>
              <a href="${runHref(r.id)}">${r.task}</a>
              <div class="muted mono">${r.id.length > 24 ? `${r.id.slice(0, 24)}…` : r.id}</div>
            </td>
            <td>${badge(r.state)}</td>
            <td class="mono truncate">${summarize(r.args, 80)}</td>
            <td class="mono">${r.worker ?? '—'}</td>
            <td class="mono">${formatTime(r.enqueuedAt)}</td>
            <td class="num">${formatDuration(r.durationMs)}</td>
            <td class="num">${r.attempts}</td>
            <td class="truncate ${r.error === null ? 'mono' : 'error-text'}">
              ${r.error === null ? summarize(r.result) : summarize(r.error)}
            </td>
            ${options.actions === undefined ? '' : html`<td>${options.actions(r)}</td>`}
          </tr>`,
      )}
    </tbody>
  </table>`;
}

/** The queues with their job counts, a state badge, and pause/resume for users who may write. */
export function queuesTable(queues: readonly QueueCounts[], canWrite: boolean): SafeHtml {
  return html`<table>
    <thead>
      <tr>
        <th>Queue</th>
        <th class="num">Waiting</th>
        <th class="num">Active</th>
        <th class="num">Delayed</th>
        <th class="num">Failed</th>
        <th>State</th>
        <th></th>
      </tr>
    </thead>
    <tbody>
      ${queues.map(
        (q) =>
          html`<tr>
            <td>${q.queue}</td>
            <td class="num">${q.waiting}</td>
            <td class="num">${q.active}</td>
            <td class="num">${q.delayed}</td>
            <td class="num">${q.failed}</td>
            <td>${badge(q.paused ? 'paused' : 'online', q.paused ? 'paused' : 'consuming')}</td>
            <td>
              ${
                canWrite
                  ? actionButton({
                      url: `/api/queues/${q.queue}/${q.paused ? 'resume' : 'pause'}`,
                      label: q.paused ? 'Resume' : 'Pause',
                      confirm: q.paused
                        ? undefined
                        : `Pause queue ${q.queue}? Every worker stops taking its jobs.`,
                    })
                  : ''
              }
            </td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

/** What a page could not read, and why (queries/read-failure.ts); nothing when it read everything. */
export function readFailures(reads: ReadonlyArray<Read<unknown>>): SafeHtml | string {
  const failed = reads.flatMap((r) => (r.ok ? [] : [r]));
  if (failed.length === 0) return '';
  return html`<div class="notice">
    ${failed.map((f) => html`<div>Could not read ${f.what}: ${f.reason}. The rest of the page is current.</div>`)}
  </div>`;
}
