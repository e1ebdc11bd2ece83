import { parseInput, runStatsOf, runStatsQuery } from '../api/index.ts';
import { timeChart } from '../charts/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import { formatDuration, html } from '../html/index.ts';
import { queueLengthSeries } from '../../runtime/index.ts';
import { settle } from '../queries/index.ts';
import { card, readFailures, tableHead } from './components.ts';
import type { PageRequest, PageResult } from './page-types.ts';

const ranges = [1, 6, 24, 72, 168, 720];

/** Task throughput and duration over time, from the durable run history. */
export async function chartsPage(ctx: DashboardContext, req: PageRequest): Promise<PageResult> {
  const query = parseInput(runStatsQuery, req.query, 'query');
  const hours = query.hours ?? 24;
  const stats = await runStatsOf(ctx, hours, query.task);
  const times = stats.series.map((b) => new Date(b.bucket));
  const lengthsRead = await settle(
    'the queue lengths',
    queueLengthSeries(ctx.pool, { hours, bucketSeconds: stats.bucketSeconds }),
  );
  const lengths = lengthsRead.ok ? lengthsRead.value : [];
  const queueNames = [...new Set(lengths.flatMap((p) => Object.keys(p.waiting)))].sort();
  const queueColors = ['#1f6feb', '#e8590c', '#7048e8', '#2f9e44'];
  const width =
    stats.bucketSeconds >= 3600 ? `${stats.bucketSeconds / 3600} h` : `${stats.bucketSeconds / 60} min`;
  const taskNames = [...ctx.runtime.tasks.keys()].sort();
  const controls = html`<section class="card">
    <form class="filters" method="get" action="/charts">
      <label
        >Range<select name="hours">
          ${ranges.map((h) => html`<option value="${h}" ${h === hours ? html`selected` : ''}>last ${h < 48 ? `${h} h` : `${h / 24} days`}</option>`)}
        </select></label
      >
      <label
        >Task<select name="task">
          <option value="">all tasks</option>
          ${taskNames.map((t) => html`<option value="${t}" ${t === query.task ? html`selected` : ''}>${t}</option>`)}
        </select></label
      >
      <button class="primary" type="submit">Show</button>
    </form>
  </section>`;
  return {
    title: 'Charts',
    controls,
    live: html`${readFailures([lengthsRead])}
      <div class="grid">
        ${card(
          `Runs finished per ${width}`,
          timeChart({
            title: '',
            times,
            bars: [
              { name: 'succeeded', color: '#2f9e44', values: stats.series.map((b) => b.succeeded) },
              { name: 'failed / timed out', color: '#e03131', values: stats.series.map((b) => b.failed) },
              { name: 'revoked', color: '#868e96', values: stats.series.map((b) => b.revoked) },
            ],
          }),
        )}
        ${card(
          `Run duration per ${width}`,
          timeChart({
            title: '',
            times,
            unit: ' ms',
            lines: [
              { name: 'p50', color: '#1f6feb', values: stats.series.map((b) => b.p50Ms) },
              { name: 'p95', color: '#e8590c', values: stats.series.map((b) => b.p95Ms) },
            ],
          }),
        )}
        ${card(
          html`Queue length
            <span class="muted" style="font-weight:400"
              >runs waiting to start, at the end of each ${width}</span
            >`,
          html`<div data-chart="queue-length">
            ${timeChart({
              title: '',
              times: lengths.map((p) => p.bucket),
              lines: (queueNames.length === 0 ? ['aggregation'] : queueNames).map((q, i) => ({
                name: q,
                color: queueColors[i % queueColors.length] ?? '#1f6feb',
                values: lengths.map((p) => p.waiting[q] ?? 0),
              })),
            })}
          </div>`,
        )}
      </div>
      ${card(
        `Per task, last ${hours} h (by enqueue time)`,
        html`<table>
          ${tableHead('Task', { num: 'Runs' }, { num: 'Succeeded' }, { num: 'Failed' }, { num: 'Mean' }, { num: 'p95' })}
          <tbody>
            ${stats.tasks.map(
              (t) =>
                html`<tr>
                  <td><a href="/tasks?task=${encodeURIComponent(t.task)}">${t.task}</a></td>
                  <td class="num">${t.runs}</td>
                  <td class="num">${t.succeeded}</td>
                  <td class="num">${t.failed}</td>
                  <td class="num">${formatDuration(t.avgMs)}</td>
                  <td class="num">${formatDuration(t.p95Ms)}</td>
                </tr>`,
            )}
          </tbody>
        </table>`,
      )}`,
  };
}
