import { backfillList } from '../api/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import { formatAge, formatDuration, html } from '../html/index.ts';
import { granularities } from '../../tasks/index.ts';
import { settle } from '../queries/index.ts';
import { actionButton, badge, card, readFailures, runHref, tableHead, timeAt } from './components.ts';
import type { PageRequest, PageResult } from './page-types.ts';

/**
 * Start a backfill (start, end, granularity) and follow the progress of running ones. Each shows its
 * status as the API does (backfillStatusOf): queued, running, cancelling, succeeded, failed, or
 * cancelled — a cancelled backfill's run is `revoked`, never a green succeeded.
 */
export async function backfillPage(ctx: DashboardContext, req: PageRequest): Promise<PageResult> {
  const backfillsRead = await settle('the backfills', backfillList(ctx));
  const backfills = backfillsRead.ok ? backfillsRead.value : [];
  const controls = req.canWrite
    ? html`<section class="card">
        <h2>New backfill</h2>
        <form class="stack" data-api-form action="/api/backfills" data-done="Backfill queued.">
          <label
            >Start (date or date-time, ${ctx.settings.analyticsTimezone})<input
              name="start_date"
              required
              placeholder="2026-11-01"
          /></label>
          <label>End (exclusive)<input name="end_date" required placeholder="2026-11-08" /></label>
          <label
            >Granularity<select name="granularity">
              ${granularities.map((g) => html`<option value="${g}">${g}</option>`)}
            </select></label
          >
          <button class="primary" type="submit">Start backfill</button>
        </form>
        <p class="muted">
          Recomputes every bucket of the range from the source rows, in windows run in parallel; rerunning the
          same backfill redoes only the windows not done. The start must lie within the retention
          (RETENTION_DAYS, and after the last cleanup's watermark), the end no later than the end of the
          current bucket.
        </p>
        <p class="muted">
          Cancel stops a backfill: windows not started are skipped, running ones terminated (their work rolls
          back); it then ends cancelled, with the windows done so far kept.
        </p>
      </section>`
    : undefined;
  return {
    title: 'Backfill',
    controls,
    live: html`${readFailures([backfillsRead])}${card(
      'Backfills',
      backfills.length === 0
        ? html`<p class="muted">No backfill has run yet.</p>`
        : html`<table>
            ${tableHead('Run', 'State', 'Range', 'Granularity', 'Progress', { num: 'Done / total' }, { num: 'Failed' }, { num: 'Cancelled' }, { num: 'ETA' }, 'Enqueued', 'Duration', '')}
            <tbody>
              ${backfills.map(({ run, status, progress }) => {
                const args = run.args as { start_date?: string; end_date?: string; granularity?: string };
                // By rollup refreshes (each window refreshes every rollup of the granularity), so that
                // a backfill of one window moves too.
                const pct =
                  progress === null || progress.refreshes.total === 0
                    ? 0
                    : Math.round((100 * progress.refreshes.done) / progress.refreshes.total);
                const refreshed =
                  progress === null
                    ? ''
                    : `: ${progress.refreshes.done} of ${progress.refreshes.total} rollup refreshes`;
                const live = ['queued', 'running', 'retrying', 'cancelling'].includes(status);
                return html`<tr data-run="${run.id}" data-status="${status}">
                  <td><a class="mono" href="${runHref(run.id)}">${run.id.slice(0, 8)}</a></td>
                  <td>${badge(status)}</td>
                  <td class="mono">${args.start_date ?? '?'} → ${args.end_date ?? '?'}</td>
                  <td>${args.granularity ?? '?'}</td>
                  <td>
                    <div class="progress" title="${pct}%${refreshed}">
                      <span style="width:${pct}%"></span>
                    </div>
                  </td>
                  <td class="num">${progress === null ? '—' : `${progress.done} / ${progress.total}`}</td>
                  <td class="num">${progress?.failed ?? '—'}</td>
                  <td class="num">${progress?.cancelled ?? '—'}</td>
                  <td class="num">
                    ${live && progress?.etaSeconds !== undefined ? formatAge(progress.etaSeconds) : '—'}
                  </td>
                  <td class="mono">${timeAt(run.enqueuedAt)}</td>
                  <td>${formatDuration(run.durationMs)}</td>
                  <td>
                    ${req.canWrite && live && status !== 'cancelling' ? actionButton({ url: `/api/backfills/${encodeURIComponent(run.id)}/cancel`, label: 'Cancel', className: 'danger', confirm: 'Cancel this backfill? Windows not started are skipped, running ones terminated.', done: 'Cancelled.' }) : ''}
                  </td>
                </tr>`;
              })}
            </tbody>
          </table>`,
    )}`,
  };
}
