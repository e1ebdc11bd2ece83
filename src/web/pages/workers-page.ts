import { workerJson } from '../api/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import { formatAge, formatBytes, html } from '../html/index.ts';
import { DASHBOARD_STATEMENT_TIMEOUT_MS, settle } from '../queries/index.ts';
import { actionButton, badge, card, queuesTable, readFailures, timeAt } from './components.ts';
import type { PageRequest, PageResult } from './page-types.ts';

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
  const idOf = (name: string): string => `conc-${name.replace(/[^a-zA-Z0-9_-]/g, '_')}`;
  return {
    title: 'Workers',
    live: html`${readFailures([workersRead, queuesRead])}
    ${card(
      'Workers',
      !workersRead.ok
        ? html`<p class="muted">Not read (see above).</p>`
        : rows.length === 0
          ? html`<p class="muted">No worker has ever sent a heartbeat to this database.</p>`
          : html`<table>
              <thead>
                <tr>
                  <th>Worker</th>
                  <th>Status</th>
                  <th>Host</th>
                  <th class="num">PID</th>
                  <th>Queues</th>
                  <th class="num">Concurrency</th>
                  <th class="num">Active</th>
                  <th class="num">Processed</th>
                  <th class="num">Failed</th>
                  <th class="num">Recycled</th>
                  <th class="num">Uptime</th>
                  <th class="num">Memory (RSS)</th>
                  <th>Last heartbeat</th>
                  <th></th>
                </tr>
              </thead>
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
                        ${
                          req.canWrite && w.online
                            ? html`<div class="actions">
                                <input
                                  id="${idOf(w.name)}"
                                  name="concurrency"
                                  type="number"
                                  min="1"
                                  max="256"
                                  value="${w.concurrency}"
                                  style="width:70px"
                                />
                                ${actionButton({ url: `/api/workers/${encodeURIComponent(w.name)}/concurrency`, label: 'Set', input: idOf(w.name), done: 'Concurrency sent.' })}
                                ${actionButton({ url: `/api/workers/${encodeURIComponent(w.name)}/shutdown`, label: 'Shut down', className: 'danger', confirm: `Shut down worker ${w.name}? Running tasks get the grace period to finish, then its process exits (under aggjobs start: beat and dashboard too); start it again from a shell.`, done: 'Shutdown sent.' })}
                              </div>`
                            : ''
                        }
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>`,
    )}
    ${card('Queues', queuesTable(queues, req.canWrite))}`,
  };
}
