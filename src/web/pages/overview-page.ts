import { recentFailures } from '../../runtime/index.ts';
import { scheduleList } from '../api/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import { formatAge, html } from '../html/index.ts';
import { DASHBOARD_STATEMENT_TIMEOUT_MS, rollupStatuses, settle } from '../queries/index.ts';
import { runJson } from '../services/index.ts';
import {
  actionButton,
  badge,
  card,
  queuesTable,
  readFailures,
  runHref,
  runsTable,
  stat,
  tableHead,
  timeAt,
} from './components.ts';
import type { PageRequest, PageResult } from './page-types.ts';

const RUNTIME_READ_WAIT_MS = DASHBOARD_STATEMENT_TIMEOUT_MS;

/** Health, queues, workers, next runs, rollup freshness and the last hour's failures. */
export async function overviewPage(ctx: DashboardContext, req: PageRequest): Promise<PageResult> {
  // The runtime's reads (health, broker, workers, schedules) do not go through the dashboard's
  // timed pool: the page stops waiting for them after RUNTIME_READ_WAIT_MS and says so.
  const [healthRead, queuesRead, workersRead, schedulesRead, rollupsRead, failuresRead] = await Promise.all([
    settle(
      'the health checks',
      ctx.health.report().catch((error: unknown) => ({
        status: 'unhealthy' as const,
        checkedAt: new Date().toISOString(),
        checks: {
          dashboard: { status: 'unhealthy' as const, detail: `health check failed: ${String(error)}` },
        },
      })),
      RUNTIME_READ_WAIT_MS,
    ),
    settle('the queues', ctx.control.queueCounts(), RUNTIME_READ_WAIT_MS),
    settle('the workers', ctx.control.workers(), RUNTIME_READ_WAIT_MS),
    settle('the schedules', scheduleList(ctx), RUNTIME_READ_WAIT_MS),
    settle('the rollup tables', rollupStatuses(ctx.pool, ctx.rollups)),
    settle("the last hour's failures", recentFailures(ctx.pool, 1, 20)),
  ]);
  const health = healthRead.ok
    ? healthRead.value
    : {
        status: 'unhealthy' as const,
        checkedAt: new Date().toISOString(),
        checks: { dashboard: { status: 'unhealthy' as const, detail: `not checked: ${healthRead.reason}` } },
      };
  const queues = queuesRead.ok ? queuesRead.value : [];
  const workers = workersRead.ok ? workersRead.value : [];
  const schedules = schedulesRead.ok ? schedulesRead.value : [];
  const rollups = rollupsRead.ok ? rollupsRead.value : [];
  const failures = failuresRead.ok ? failuresRead.value : [];
  const notRead = readFailures([
    healthRead,
    queuesRead,
    workersRead,
    schedulesRead,
    rollupsRead,
    failuresRead,
  ]);
  const online = workers.filter((w) => w.online);
  const waiting = queues.reduce((s, q) => s + q.waiting + q.delayed, 0);
  const active = queues.reduce((s, q) => s + q.active, 0);

  const healthCard = card(
    html`Health ${badge(health.status)}
      <span class="muted" style="font-weight:400">checked ${timeAt(health.checkedAt)}</span>`,
    html`<table>
      <tbody>
        ${Object.entries(health.checks).map(
          ([name, check]) =>
            html`<tr>
              <td>${name.replace(/_/g, ' ')}</td>
              <td>${badge(check.status)}</td>
              <td>${ctx.scrub.text(check.detail)}</td>
            </tr>`,
        )}
      </tbody>
    </table>`,
  );
  const queuesCard = card(
    html`Queues
      <span class="muted" style="font-weight:400"
        >(${ctx.runtime.broker.kind === 'redis' ? 'Redis' : 'PostgreSQL'} broker)</span
      >`,
    queuesTable(queues, req.canWrite),
  );
  const workersCard = card(
    html`Workers online
      <span class="muted" style="font-weight:400">${online.length} of ${workers.length} known</span>`,
    online.length === 0
      ? html`<p class="muted">
          No worker has sent a heartbeat in the last 15 s. Start one with <code>aggjobs worker</code>.
        </p>`
      : html`<table>
          ${tableHead('Worker', 'Queues', { num: 'Active' }, { num: 'Concurrency' }, { num: 'Processed' }, { num: 'Failed' })}
          <tbody>
            ${online.map(
              (w) =>
                html`<tr>
                  <td class="mono">${w.name}</td>
                  <td>${w.queues.join(', ')}</td>
                  <td class="num">${w.active}</td>
                  <td class="num">${w.concurrency}</td>
                  <td class="num">${w.processed}</td>
                  <td class="num">${w.failed}</td>
                </tr>`,
            )}
          </tbody>
        </table>`,
  );
  const schedulesCard = card(
    'Next runs',
    html`<table>
      ${tableHead('Schedule', 'Next run', 'Last run')}
      <tbody>
        ${[...schedules]
          .sort((a, b) => (a.nextRunAt ?? '9').localeCompare(b.nextRunAt ?? '9'))
          .map(
            (s) =>
              html`<tr>
                <td>${s.task}</td>
                <td class="mono">${s.enabled ? timeAt(s.nextRunAt) : badge('no', 'disabled')}</td>
                <td>
                  ${s.lastRun === null ? html`<span class="muted">never</span>` : html`<a href="${runHref(s.lastRun.id)}">${badge(s.lastRun.state)}</a>`}
                </td>
              </tr>`,
          )}
      </tbody>
    </table>`,
  );
  const freshnessCard = card(
    'Rollup freshness',
    html`<table>
      ${tableHead('Table', { num: 'Lag' }, 'Last refresh')}
      <tbody>
        ${rollups.map(
          (r) =>
            html`<tr>
              <td>${r.table}</td>
              <td class="num">${r.lagSeconds === null ? badge('no', 'never') : formatAge(r.lagSeconds)}</td>
              <td class="mono">${timeAt(r.lastRefreshAt)}</td>
            </tr>`,
        )}
      </tbody>
    </table>`,
  );
  const failuresCard = card(
    html`Failures in the last hour <span class="muted" style="font-weight:400">${failures.length}</span>`,
    runsTable(
      failures.map((r) => runJson(r, ctx.scrub)),
      {
        empty: 'No failed or timed-out run in the last hour.',
        actions: req.canWrite
          ? (r) =>
              actionButton({
                url: `/api/tasks/${encodeURIComponent(r.id)}/retry`,
                label: 'Retry',
                then: '/tasks/{id}',
              })
          : undefined,
      },
    ),
  );

  return {
    title: 'Overview',
    live: html`${notRead}
      <div class="stats">
        ${stat('Health', badge(health.status))} ${stat('Workers online', online.length)}
        ${stat('Waiting', waiting)} ${stat('Running', active)} ${stat('Failures (1 h)', failures.length)}
      </div>
      <div class="grid">${healthCard}${queuesCard}</div>
      <div class="grid">${workersCard}${schedulesCard}</div>
      ${failuresCard} ${freshnessCard}`,
  };
}
