import { workerJson } from '../api/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import { formatAge, formatBytes, html, type SafeHtml } from '../html/index.ts';
import { queueNames } from '../../tasks/index.ts';
import { DASHBOARD_STATEMENT_TIMEOUT_MS, settle } from '../queries/index.ts';
import { actionButton, badge, card, queuesTable, readFailures, tableHead, timeAt } from './components.ts';
import type { PageRequest, PageResult } from './page-types.ts';

const fieldId = (prefix: string, name: string): string => `${prefix}-${name.replace(/[^a-zA-Z0-9_-]/g, '_')}`;

/**
 * An online worker's controls (Flower's): concurrency and shutdown in view; autoscale, pool restart
 * and queue consumers under "More" (kept open across refreshes).
 */
function workerControls(name: string, concurrency: number, consumed: readonly string[]): SafeHtml {
  const api = `/api/workers/${encodeURIComponent(name)}`;
  const conc = fieldId('conc', name);
  const min = fieldId('as-min', name);
  const max = fieldId('as-max', name);
  return html`<div class="actions">
      <input
        id="${conc}"
        name="concurrency"
        type="number"
        min="1"
        max="256"
        value="${concurrency}"
        style="width:70px"
      />
      ${actionButton({ url: `${api}/concurrency`, label: 'Set', input: conc, done: 'Concurrency sent.' })}
      ${actionButton({ url: `${api}/shutdown`, label: 'Shut down', className: 'danger', confirm: `Shut down worker ${name}? Running tasks get the grace period to finish, then its process exits (under aggjobs start: beat and dashboard too); start it again from a shell.`, done: 'Shutdown sent.' })}
    </div>
    <details id="${fieldId('more', name)}" class="worker-more">
      <summary>More</summary>
      <div class="actions">
        <span class="muted">Autoscale</span>
        <input id="${min}" name="min" type="number" min="1" max="256" placeholder="min" style="width:64px" />
        <input id="${max}" name="max" type="number" min="1" max="256" placeholder="max" style="width:64px" />
        ${actionButton({ url: `${api}/autoscale`, label: 'Autoscale', input: `${min},${max}`, done: 'Autoscale sent.' })}
      </div>
      <div class="actions">
        ${actionButton({ url: `${api}/pool-restart`, label: 'Restart pool', confirm: `Restart the pool of ${name}? Idle task threads (async pool: run sessions) are replaced now, busy ones after their run.`, done: 'Pool restart sent.' })}
      </div>
      <div class="actions">
        <span class="muted">Queues</span>
        ${queueNames.map((q) =>
          consumed.includes(q)
            ? actionButton({
                url: `${api}/consumers/cancel`,
                body: { queue: q },
                label: `Stop consuming ${q}`,
                confirm: `Stop ${name} taking jobs from ${q}? Its running ones finish.`,
                done: `Consumer of ${q} cancelled.`,
              })
            : actionButton({
                url: `${api}/consumers/add`,
                body: { queue: q },
                label: `Consume ${q}`,
                done: `Consumer of ${q} added.`,
              }),
        )}
      </div>
    </details>`;
}

/** Worker processes from their heartbeats, with concurrency, pause/resume of queues and shutdown. */
export async function workersPage(ctx: DashboardContext, req: PageRequest): Promise<PageResult> {
  const now = new Date();
  // Workers come from the database (timed pool), queues from the broker: the page waits for the
  // broker no longer than a query may run, and shows what it read.
  const [workersRead, queuesRead] = await Promise.all([
    settle('the workers', ctx.control.workers()),
    settle('the queues', ctx.control.queueCounts(), DASHBOARD_STATEMENT_TIMEOUT_MS),
  ]);
  const rows = (workersRead.ok ? workersRead.value : []).map((w) => workerJson(w, now));
  const queues = queuesRead.ok ? queuesRead.value : [];
  return {
    title: 'Workers',
    live: html`${readFailures([workersRead, queuesRead])}
    ${card(
      html`Workers
      ${
        req.canWrite && rows.some((w) => !w.online)
          ? actionButton({
              url: '/api/workers/prune',
              label: 'Prune offline workers',
              confirm: 'Remove every offline worker from this list? A worker that comes back appears again.',
              done: 'Offline workers pruned.',
            })
          : ''
      }`,
      !workersRead.ok
        ? html`<p class="muted">Not read (see above).</p>`
        : rows.length === 0
          ? html`<p class="muted">No worker has ever sent a heartbeat to this database.</p>`
          : html`<table>
              ${tableHead('Worker', 'Status', 'Host', { num: 'PID' }, 'Queues', { num: 'Concurrency' }, { num: 'Active' }, { num: 'Processed' }, { num: 'Failed' }, { num: 'Recycled' }, { num: 'Uptime' }, { num: 'Memory (RSS)' }, 'Last heartbeat', '')}
              <tbody>
                ${rows.map(
                  (w) =>
                    html`<tr>
                      <td class="mono">${w.name}</td>
                      <td>${badge(w.online ? 'online' : 'offline')}</td>
                      <td>${w.host}</td>
                      <td class="num">${w.pid}</td>
                      <td>${w.queues.join(', ')}</td>
                      <td class="num">${w.concurrency}</td>
                      <td class="num">${w.active}</td>
                      <td class="num">${w.processed}</td>
                      <td class="num">${w.failed}</td>
                      <td class="num">${w.recycled}</td>
                      <td class="num">${w.online ? formatAge(w.uptimeSeconds) : '—'}</td>
                      <td class="num">${formatBytes(w.rssBytes)}</td>
                      <td class="mono">${timeAt(w.lastHeartbeat)}</td>
                      <td>
                        ${req.canWrite && w.online ? workerControls(w.name, w.concurrency, w.queues) : ''}
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>`,
    )}
    ${card('Queues', queuesTable(queues, req.canWrite))}`,
  };
}
