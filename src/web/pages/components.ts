import {
  formatDuration,
  formatJson,
  formatNumber,
  formatTime,
  html,
  type HtmlChild,
  type SafeHtml,
} from '../html/index.ts';
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

/** A table's header row; a `{ num }` column is right-aligned, for numbers. */
export function tableHead(...columns: Array<string | { num: string }>): SafeHtml {
  const th = (c: string | { num: string }) =>
    typeof c === 'string' ? html`<th>${c}</th>` : html`<th class="num">${c.num}</th>`;
  return html`<thead>
    <tr>
      ${columns.map(th)}
    </tr>
  </thead>`;
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

/**
 * A time as `<time>`: the server writes it in UTC; the client script shows it in the browser's zone
 * with how long ago (or until) it is, and keeps the exact UTC time on hover.
 */
export function timeAt(value: Date | string | null | undefined): SafeHtml | string {
  if (value === null || value === undefined) return '—';
  const date = typeof value === 'string' ? new Date(value) : value;
  if (Number.isNaN(date.getTime())) return '—';
  const utc = formatTime(date);
  return html`<time datetime="${date.toISOString()}" title="${utc}">${utc}</time>`;
}

const isScalar = (v: unknown): v is string | number | boolean | null =>
  v === null || ['string', 'number', 'boolean'].includes(typeof v);

function scalarText(v: unknown): string {
  if (typeof v === 'number') return formatNumber(v);
  return v === null ? 'null' : String(v);
}

/**
 * A result for a table cell, readably: an object's scalar fields as `name: value` (numbers grouped),
 * nested ones as `name: {…}`; the whole value is on the run's page.
 */
export function resultSummary(value: unknown, max = 4): SafeHtml | string {
  if (value === null || value === undefined) return '';
  if (isScalar(value)) return summarize(scalarText(value), 120);
  if (Array.isArray(value)) return `${value.length} item${value.length === 1 ? '' : 's'}`;
  const entries = Object.entries(value as Record<string, unknown>);
  const shown = entries
    .slice(0, max)
    .map(
      ([k, v]) =>
        html`<span class="kv"
          ><span class="muted">${k}</span>
          ${isScalar(v) ? summarize(scalarText(v), 40) : Array.isArray(v) ? `[${v.length}]` : '{…}'}</span
        >`,
    );
  return html`${shown}${entries.length > max ? html`<span class="muted"> +${entries.length - max} more</span>` : ''}`;
}

/**
 * A result on a run's page: an object as a table of its fields (nested values as indented JSON), an
 * array of objects as a table with a column per key, anything else as JSON; the raw JSON below.
 */
export function resultView(value: unknown): SafeHtml {
  const rawJson = html`<details>
    <summary class="muted">JSON</summary>
    <pre class="result">${formatJson(value)}</pre>
  </details>`;
  if (value === null || value === undefined) return html`<p class="muted">No result.</p>`;
  const cell = (v: unknown): SafeHtml | string =>
    isScalar(v) ? scalarText(v) : html`<pre class="inline">${JSON.stringify(v, null, 2)}</pre>`;
  if (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((v) => v !== null && typeof v === 'object' && !Array.isArray(v))
  ) {
    const keys = [...new Set(value.flatMap((v) => Object.keys(v as object)))].slice(0, 12);
    return html`<table class="result-table">
        ${tableHead(...keys)}
        <tbody>
          ${value.slice(0, 200).map(
            (row) =>
              html`<tr>
                ${keys.map((k) => html`<td>${cell((row as Record<string, unknown>)[k])}</td>`)}
              </tr>`,
          )}
        </tbody>
      </table>
      ${rawJson}`;
  }
  if (typeof value === 'object' && !Array.isArray(value)) {
    return html`<dl class="props result-fields">
        ${Object.entries(value as Record<string, unknown>).map(
          ([k, v]) =>
            html`<dt>${k}</dt>
              <dd class="mono">${cell(v)}</dd>`,
        )}
      </dl>
      ${rawJson}`;
  }
  return html`<pre class="result">${formatJson(value)}</pre>`;
}

export function runsTable(
  runs: readonly RunJson[],
  options: {
    empty: string;
    actions?: (run: RunJson) => HtmlChild;
    /** Per parent run: how many child runs it has (a backfill's windows), said under its name. */
    childCounts?: ReadonlyMap<string, number>;
  },
): SafeHtml {
  if (runs.length === 0) return html`<p class="muted">${options.empty}</p>`;
  return html`<table class="runs sortable">
    ${tableHead('Task', 'State', 'Args', 'Worker', 'Enqueued', { num: 'Duration' }, { num: 'Attempts' }, 'Result / error', ...(options.actions === undefined ? [] : ['']))}
    <tbody>
      ${runs.map(
        (r) =>
          html`<tr data-run="${r.id}" data-state="${r.state}">
            <td>
              <a href="${runHref(r.id)}">${r.task}</a>
              <div class="muted mono">${r.id.length > 24 ? `${r.id.slice(0, 24)}…` : r.id}</div>
              ${options.childCounts?.get(r.id) === undefined ? '' : html`<div class="muted">${options.childCounts.get(r.id)} child window runs</div>`}
            </td>
            <td>
              ${badge(r.state)}
              ${(r.state === 'queued' || r.state === 'retrying') && r.notBefore !== null && new Date(r.notBefore).getTime() > Date.now() ? html`<div class="muted">will run ${timeAt(r.notBefore)}</div>` : ''}
            </td>
            <td class="mono truncate">${summarize(r.args, 80)}</td>
            <td class="mono">${r.worker ?? '—'}</td>
            <td class="mono" data-sort="${r.enqueuedAt}">${timeAt(r.enqueuedAt)}</td>
            <td class="num" data-sort="${r.durationMs ?? -1}">${formatDuration(r.durationMs)}</td>
            <td class="num">${r.attempts}</td>
            <td class="${r.error === null ? 'result-cell' : 'truncate error-text'}">
              ${r.error === null ? resultSummary(r.result) : summarize(r.error)}
            </td>
            ${options.actions === undefined ? '' : html`<td>${options.actions(r)}</td>`}
          </tr>`,
      )}
    </tbody>
  </table>`;
}

/** Set (max jobs per so many seconds, over every worker) or remove a queue's rate limit. */
function rateLimitControls(queue: string, limited: boolean): SafeHtml {
  const api = `/api/queues/${queue}/rate-limit`;
  return html`<details id="rate-${queue}" class="rate-limit">
    <summary>Change</summary>
    <div class="actions">
      <input id="rate-${queue}-max" name="max" type="number" min="1" placeholder="jobs" style="width:70px" />
      per
      <input
        id="rate-${queue}-ms"
        name="durationMs"
        type="number"
        min="1"
        placeholder="ms"
        style="width:80px"
      />
      ms
      ${actionButton({ url: api, label: 'Set', input: `rate-${queue}-max,rate-${queue}-ms`, done: `Rate limit of ${queue} set.` })}
      ${limited ? actionButton({ url: api, label: 'Remove', body: { max: null }, done: `Rate limit of ${queue} removed.` }) : ''}
    </div>
  </details>`;
}

/** The queues with their job counts, a state badge, and pause/resume for users who may write. */
export function queuesTable(queues: readonly QueueCounts[], canWrite: boolean): SafeHtml {
  return html`<table>
    ${tableHead('Queue', { num: 'Waiting' }, { num: 'Active' }, { num: 'Delayed' }, { num: 'Failed' }, 'State', 'Rate limit', '')}
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
              ${q.rateLimit === null ? html`<span class="muted">none</span>` : `${q.rateLimit.max} per ${q.rateLimit.durationMs / 1000} s`}
              ${canWrite ? rateLimitControls(q.queue, q.rateLimit !== null) : ''}
            </td>
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
