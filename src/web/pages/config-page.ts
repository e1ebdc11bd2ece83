import type { DashboardContext } from '../dashboard-context.ts';
import { html } from '../html/index.ts';
import { configView } from '../services/index.ts';
import { badge, card, tableHead } from './components.ts';
import type { PageRequest, PageResult } from './page-types.ts';

/** Flower's configuration viewer: settings (credentials hidden) and each task's limits and schedule. */
export function configPage(ctx: DashboardContext, req: PageRequest): Promise<PageResult> {
  const view = configView(ctx);
  const shown = (value: unknown): string =>
    value === null ? '—' : typeof value === 'string' ? value : JSON.stringify(value);
  const tasks = [...ctx.runtime.tasks.keys()].sort();
  const timeLimitForm = req.canWrite
    ? html`<section class="card">
        <h2>Change a task's time limits</h2>
        <form
          class="stack"
          data-api-form
          action="/api/tasks/{task}/time-limits"
          data-url-fields="task"
          data-number-fields="soft,hard"
          data-done="Time limits sent to every worker."
        >
          <label
            >Task<select name="task">
              ${tasks.map((t) => html`<option value="${t}">${t}</option>`)}
            </select></label
          >
          <label
            >Soft (s)<input name="soft" type="number" min="1" step="any" required style="width:90px"
          /></label>
          <label
            >Hard (s)<input name="hard" type="number" min="1" step="any" required style="width:90px"
          /></label>
          <button class="primary" type="submit">Set</button>
        </form>
        <p class="muted">
          Every running worker runs the task with these limits from its next run (Celery's time_limit). Not
          kept: a worker started later has the configured limits below (TASK_TIME_LIMITS).
        </p>
      </section>`
    : undefined;
  return Promise.resolve({
    title: 'Configuration',
    controls: timeLimitForm,
    live: html`${card(
      'Tasks',
      html`<table class="config-tasks">
        ${tableHead('Task', 'Queue', { num: 'Soft limit (s)' }, { num: 'Hard limit (s)' }, 'Schedule')}
        <tbody>
          ${view.tasks.map(
            (t) =>
              html`<tr>
                <td>${t.name}</td>
                <td>${t.queue}</td>
                <td class="num">${t.softSeconds}</td>
                <td class="num">${t.hardSeconds}</td>
                <td class="mono">
                  ${t.schedule ?? '—'} ${t.scheduleEnabled === false ? badge('no', 'disabled') : ''}
                </td>
              </tr>`,
          )}
        </tbody>
      </table>`,
    )}
    ${card(
      html`Settings
        <span class="muted" style="font-weight:400">of this dashboard's process; credentials hidden</span>`,
      html`<table class="config-settings">
        ${tableHead('Setting', 'Value')}
        <tbody>
          ${view.settings.map(
            (s) =>
              html`<tr>
                <td class="mono">${s.name}</td>
                <td class="mono" style="white-space:normal;word-break:break-all">${shown(s.value)}</td>
              </tr>`,
          )}
        </tbody>
      </table>`,
    )}`,
  });
}
