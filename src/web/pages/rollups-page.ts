import { findRollup, parseInput, seriesOf, seriesQuery } from '../api/index.ts';
import { timeChart } from '../charts/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import { formatAge, formatDuration, formatNumber, formatTime, html, type SafeHtml } from '../html/index.ts';
import {
  knownWorkspaces,
  rollupStatuses,
  settle,
  viewStatuses,
  type RollupStatus,
} from '../queries/index.ts';
import { badge, card, readFailures } from './components.ts';
import type { PageRequest, PageResult } from './page-types.ts';

const CHART_TABLE = 'execution_metrics_hourly';

function lastResultCell(value: unknown): SafeHtml {
  if (value === null || typeof value !== 'object') return html`<span class="muted">—</span>`;
  const r = value as Record<string, unknown>;
  const num = (k: string): string => (typeof r[k] === 'number' ? formatNumber(r[k]) : '—');
  return html`<span class="mono">${String(r.mode ?? '')}</span> · ${num('groupsRecomputed')} groups ·
    ${num('rowsWritten')} written · ${num('rowsDeleted')} deleted ·
    ${typeof r.durationMs === 'number' ? formatDuration(r.durationMs) : '—'}`;
}

/** A rollup that needs a rebuild: what changed and the command, else nothing. */
function rebuildNotice(r: RollupStatus): SafeHtml | string {
  if (r.rebuild === null) return '';
  return html`<div>
    ${badge('unhealthy', 'needs rebuild')}
    <span class="muted">${r.rebuild.changes.map((c) => c.detail).join('; ')}</span>
    <div class="mono">${r.rebuild.command}</div>
  </div>`;
}

/** Per rollup table: horizon and lag, rows, last refresh and its figures; a chart per hour. */
export async function rollupsPage(ctx: DashboardContext, req: PageRequest): Promise<PageResult> {
  const query = parseInput(seriesQuery, req.query, 'query');
  const def = findRollup(ctx, CHART_TABLE);
  // Each part is read on its own: a part that times out (a lock held on its table) is said so, the
  // others are shown.
  const [rollupsRead, viewsRead, workspacesRead, seriesRead] = await Promise.all([
    settle('the rollup tables', rollupStatuses(ctx.pool, ctx.rollups, ctx.settings.analyticsTimezone)),
    settle('the materialized views', viewStatuses(ctx.pool, ctx.views)),
    settle('the workspaces', knownWorkspaces(ctx.pool)),
    settle(`analytics.${CHART_TABLE}`, seriesOf(ctx, def, query)),
  ]);
  const rollups = rollupsRead.ok ? rollupsRead.value : [];
  const views = viewsRead.ok ? viewsRead.value : [];
  const workspaces = workspacesRead.ok ? workspacesRead.value : [];
  const points = seriesRead.ok ? seriesRead.value.points : [];
  const chartWorkspace = seriesRead.ok ? seriesRead.value.workspace : (query.workspace ?? null);
  const times = points.map((p) => new Date(p.bucket));
  const values = (name: string): number[] =>
    points.map((p) => Number((p as Record<string, unknown>)[name] ?? 0));
  const selected = req.query.workspace ?? '';

  const controls = html`<section class="card">
    <form class="filters" method="get" action="/rollups">
      <label
        >Workspace<select name="workspace">
          <option value="">all workspaces</option>
          ${workspaces.map((w) => html`<option value="${w.id}" ${String(w.id) === selected ? html`selected` : ''}>${w.id} · ${w.name}</option>`)}
        </select></label
      >
      <label>From (UTC)<input type="datetime-local" name="from" value="${req.query.from ?? ''}" /></label>
      <label>To (UTC)<input type="datetime-local" name="to" value="${req.query.to ?? ''}" /></label>
      <button class="primary" type="submit">Show</button>
    </form>
  </section>`;

  return {
    title: 'Rollups',
    controls,
    live: html`${readFailures([rollupsRead, viewsRead, workspacesRead, seriesRead])}
      <div class="grid">
        ${card(
          html`Executions per hour
            <span class="muted" style="font-weight:400"
              >analytics.${CHART_TABLE},
              ${chartWorkspace === null ? 'all workspaces' : `workspace ${chartWorkspace}`}</span
            >`,
          timeChart({
            title: '',
            times,
            bars: [
              { name: 'succeeded', color: '#2f9e44', values: values('executions_succeeded') },
              { name: 'failed', color: '#e03131', values: values('executions_failed') },
              { name: 'timed out', color: '#e8590c', values: values('executions_timed_out') },
            ],
            lines: [{ name: 'total', color: '#1f6feb', values: values('executions_total') }],
          }),
        )}
        ${card(
          'Credits used per hour',
          timeChart({
            title: '',
            times,
            lines: [{ name: 'credits used', color: '#7048e8', values: values('credits_used') }],
          }),
        )}
      </div>
      ${card(
        'Rollup tables',
        html`<table>
          <thead>
            <tr>
              <th>Table</th>
              <th>Grain</th>
              <th>Source</th>
              <th class="num">Lag</th>
              <th>Horizon at</th>
              <th class="num">Rows (est.)</th>
              <th>Last refresh</th>
              <th>Last result</th>
            </tr>
          </thead>
          <tbody>
            ${rollups.map(
              (r) =>
                html`<tr>
                  <td><a href="/api/rollups/${r.table}/series">${r.table}</a>${rebuildNotice(r)}</td>
                  <td>${r.grain}</td>
                  <td class="mono">${r.source}</td>
                  <td class="num">
                    ${r.lagSeconds === null ? badge('no', 'never') : formatAge(r.lagSeconds)}
                  </td>
                  <td class="mono">
                    ${formatTime(r.horizonAt)}
                    <div class="muted">xid ${r.horizon ?? '—'}</div>
                  </td>
                  <td class="num">${formatNumber(r.rowsEstimate)}</td>
                  <td class="mono">${formatTime(r.lastRefreshAt)}</td>
                  <td>${lastResultCell(ctx.scrub.value(r.lastResult))}</td>
                </tr>`,
            )}
          </tbody>
        </table>`,
      )}
      ${card(
        'Materialized views',
        html`<table>
          <thead>
            <tr>
              <th>View</th>
              <th class="num">Age</th>
              <th>Refreshed</th>
              <th class="num">Took</th>
              <th class="num">Rows (est.)</th>
            </tr>
          </thead>
          <tbody>
            ${views.map(
              (v) =>
                html`<tr>
                  <td>analytics.${v.view}</td>
                  <td class="num">
                    ${v.lagSeconds === null ? badge('no', 'never') : formatAge(v.lagSeconds)}
                  </td>
                  <td class="mono">${formatTime(v.refreshedAt)}</td>
                  <td class="num">${formatDuration(v.durationMs)}</td>
                  <td class="num">${formatNumber(v.rowsEstimate)}</td>
                </tr>`,
            )}
          </tbody>
        </table>`,
      )}`,
  };
}
