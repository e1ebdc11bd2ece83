import { scheduleList } from '../api/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import { html } from '../html/index.ts';
import { settle } from '../queries/index.ts';
import {
  readFailures,
  actionButton,
  badge,
  card,
  runHref,
  summarize,
  tableHead,
  timeAt,
} from './components.ts';
import type { PageRequest, PageResult } from './page-types.ts';

/** The beat's periodic tasks: cron, zone, flag, last run and its outcome, next run, run now. */
export async function schedulesPage(ctx: DashboardContext, req: PageRequest): Promise<PageResult> {
  // Both reads are timed (the Control runs on the dashboard's timed pool): under a held lock the
  // page says what it could not read.
  const [schedulesRead, beatRead] = await Promise.all([
    settle('the schedules', scheduleList(ctx)),
    settle('the beat leader', ctx.control.beat()),
  ]);
  const schedules = schedulesRead.ok ? schedulesRead.value : [];
  const beat = beatRead.ok ? beatRead.value : undefined;
  return {
    title: 'Schedules',
    live: html`${readFailures([schedulesRead, beatRead])}
      <p class="muted">
        Beat leader:
        ${
          beat === undefined
            ? 'none yet (start one with aggjobs beat)'
            : html`<span class="mono">${beat.holder}</span>
                ${badge(beat.active ? 'online' : 'offline', beat.active ? 'active' : 'lease expired')}, lease
                until ${timeAt(beat.expiresAt)}`
        }
      </p>
      ${card(
        'Periodic tasks',
        html`<table>
          ${tableHead('Task', 'Cron', 'Time zone', 'Queue', 'Enabled', 'Last run', 'Last result', 'Next run', '')}
          <tbody>
            ${schedules.map(
              (s) =>
                html`<tr>
                  <td>${s.task}</td>
                  <td class="mono">${s.cron}</td>
                  <td>${s.timezone}</td>
                  <td>${s.queue}</td>
                  <td>${badge(s.enabled ? 'yes' : 'no', s.enabled ? 'enabled' : 'disabled')}</td>
                  <td>
                    ${s.lastRun === null ? html`<span class="muted">never</span>` : html`<a href="${runHref(s.lastRun.id)}">${badge(s.lastRun.state)}</a> <span class="mono muted">${timeAt(s.lastRun.finishedAt ?? s.lastRun.enqueuedAt)}</span>`}
                  </td>
                  <td class="truncate ${s.lastRun?.error == null ? 'mono' : 'error-text'}">
                    ${s.lastRun === null ? '' : s.lastRun.error === null ? summarize(s.lastRun.result, 60) : summarize(s.lastRun.error, 60)}
                  </td>
                  <td class="mono">${s.enabled ? timeAt(s.nextRunAt) : '—'}</td>
                  <td>
                    ${req.canWrite ? actionButton({ url: `/api/schedules/${encodeURIComponent(s.task)}/run`, label: 'Run now', then: '/tasks/{id}', confirm: `Run ${s.task} now?` }) : ''}
                  </td>
                </tr>`,
            )}
          </tbody>
        </table>`,
      )}`,
  };
}
