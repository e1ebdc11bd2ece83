import { parseInput, seriesOf, seriesQuery } from '../api/index.ts';
import type { RollupDefinition } from '../../rollups/index.ts';
import { timeChart } from '../charts/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import { formatAge, formatDuration, formatNumber, html, type SafeHtml } from '../html/index.ts';
import {
  additiveMeasures,
  hasWorkspace,
  knownWorkspaces,
  rollupStatuses,
  type Read,
  settle,
  viewStatuses,
  type RollupStatus,
} from '../queries/index.ts';
import { badge, card, readFailures, tableHead, timeAt } from './components.ts';
import type { PageRequest, PageResult } from './page-types.ts';

const PALETTE = ['#1f6feb', '#2f9e44', '#e03131', '#e8590c', '#7048e8', '#868e96', '#0c8599', '#d6336c'];

type SeriesRead = Read<Awaited<ReturnType<typeof seriesOf>>>;

/**
 * A rollup's chart: its additive count measures as lines over its buckets, and its additive sums
 * (another scale) in a second chart. Distinct counts and percentiles do not add up over rows, so
 * they are not drawn.
 */
function rollupChart(def: RollupDefinition, read: SeriesRead): SafeHtml {
  const grain = typeof def.grain === 'string' ? def.grain : `${def.grain.minutes} min`;
  if (!read.ok) {
    return card(`analytics.${def.name}`, html`<p class="muted">Not read: ${read.reason}.</p>`);
  }
  const points = read.value.points;
  const times = points.map((p) => new Date(p.bucket));
  const additive = additiveMeasures(def);
  const sqlOf = (name: string): string => def.measures.find((m) => m.name === name)?.sql ?? '';
  const counts = additive.filter((m) => /^\s*count\s*\(/i.test(sqlOf(m)));
  const sums = additive.filter((m) => !counts.includes(m));
  const lines = (names: readonly string[]) =>
    names.map((name, i) => ({
      name,
      color: PALETTE[i % PALETTE.length] ?? '#1f6feb',
      values: points.map((p) => Number((p as Record<string, unknown>)[name] ?? 0)),
    }));
  return card(
    html`analytics.${def.name}
      <span class="muted" style="font-weight:400"
        >per ${grain},
        ${read.value.workspace === null ? 'all workspaces' : `workspace ${read.value.workspace}`}</span
      >`,
    html`<div data-rollup="${def.name}">
      ${counts.length === 0 ? '' : timeChart({ title: '', times, lines: lines(counts) })}
      ${sums.length === 0 ? '' : timeChart({ title: '', times, lines: lines(sums) })}
    </div>`,
  );
}

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
  // Each part is read on its own: a part that times out (a lock held on its table) is said so, the
  // others are shown. Every rollup table is charted; the workspace filter applies to those that
  // have a workspace.
  const [rollupsRead, viewsRead, workspacesRead, ...seriesReads] = await Promise.all([
    settle('the rollup tables', rollupStatuses(ctx.pool, ctx.rollups, ctx.settings.analyticsTimezone)),
    settle('the materialized views', viewStatuses(ctx.pool, ctx.views)),
    settle('the workspaces', knownWorkspaces(ctx.pool)),
    ...ctx.rollups.map((def) =>
      settle(
        `analytics.${def.name}`,
        seriesOf(ctx, def, { ...query, workspace: hasWorkspace(def) ? query.workspace : undefined }),
      ),
    ),
  ]);
  const rollups = rollupsRead.ok ? rollupsRead.value : [];
  const views = viewsRead.ok ? viewsRead.value : [];
  const workspaces = workspacesRead.ok ? workspacesRead.value : [];
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
    live: html`${readFailures([rollupsRead, viewsRead, workspacesRead, ...seriesReads])}
      ${card(
        'Rollup tables',
        html`<table>
          ${tableHead('Table', 'Grain', 'Source', { num: 'Lag' }, 'Horizon at', { num: 'Rows (est.)' }, 'Last refresh', 'Last result')}
          <tbody>
            ${rollups.map(
              (r) =>
                html`<tr>
                  <td>
                    ${r.table}
                    <a class="muted" href="/api/rollups/${r.table}/series">JSON</a>${rebuildNotice(r)}
                  </td>
                  <td>${r.grain}</td>
                  <td class="mono">${r.source}</td>
                  <td class="num">
                    ${r.lagSeconds === null ? badge('no', 'never') : formatAge(r.lagSeconds)}
                  </td>
                  <td class="mono">
                    ${timeAt(r.horizonAt)}
                    <div class="muted">xid ${r.horizon ?? '—'}</div>
                  </td>
                  <td class="num">${formatNumber(r.rowsEstimate)}</td>
                  <td class="mono">${timeAt(r.lastRefreshAt)}</td>
                  <td>${lastResultCell(ctx.scrub.value(r.lastResult))}</td>
                </tr>`,
            )}
          </tbody>
        </table>`,
      )}
      <div class="grid charts">
        ${ctx.rollups.map((def, i) => rollupChart(def, seriesReads[i] as SeriesRead))}
      </div>
      ${card(
        'Materialized views',
        html`<table>
          ${tableHead('View', { num: 'Age' }, 'Refreshed', { num: 'Took' }, { num: 'Rows (est.)' })}
          <tbody>
            ${views.map(
              (v) =>
                html`<tr>
                  <td>analytics.${v.view}</td>
                  <td class="num">
                    ${v.lagSeconds === null ? badge('no', 'never') : formatAge(v.lagSeconds)}
                  </td>
                  <td class="mono">${timeAt(v.refreshedAt)}</td>
                  <td class="num">${formatDuration(v.durationMs)}</td>
                  <td class="num">${formatNumber(v.rowsEstimate)}</td>
                </tr>`,
            )}
          </tbody>
        </table>`,
      )}`,
  };
}
