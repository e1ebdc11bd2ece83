import { parseInput, runListQuery } from '../api/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import { html } from '../html/index.ts';
import { knownWorkers, searchRuns } from '../queries/index.ts';
import { runJson } from '../services/index.ts';
import { runsTable } from './components.ts';
import type { PageRequest, PageResult } from './page-types.ts';

const states = ['queued', 'running', 'succeeded', 'failed', 'timed_out', 'revoked', 'retrying'];

/** The run history with filters (task, state, worker, time range, text), paginated, live. */
export async function tasksPage(ctx: DashboardContext, req: PageRequest): Promise<PageResult> {
  const query = parseInput(runListQuery, req.query, 'query');
  const limit = query.limit ?? 50;
  const page = query.page ?? 1;
  const [{ runs, hasMore }, workers] = await Promise.all([
    searchRuns(ctx.pool, query, { limit, offset: (page - 1) * limit }),
    knownWorkers(ctx.pool),
  ]);
  const taskNames = [...ctx.runtime.tasks.keys()].sort();
  const v = (name: string): string => req.query[name] ?? '';
  const pageHref = (p: number): string => {
    const params = new URLSearchParams({ ...req.query, page: String(p) });
    return `/tasks?${params.toString()}`;
  };
  const option = (value: string, selected: string, label = value) =>
    html`<option value="${value}" ${value === selected ? html`selected` : ''}>${label}</option>`;

  const controls = html`<section class="card">
    <form class="filters" method="get" action="/tasks">
      <label
        >Task<select name="task">
          ${option('', v('task'), 'any')}${taskNames.map((t) => option(t, v('task')))}
        </select></label
      >
      <label
        >State<select name="state">
          ${option('', v('state'), 'any')}${states.map((s) => option(s, v('state')))}
        </select></label
      >
      <label
        >Worker<select name="worker">
          ${option('', v('worker'), 'any')}${workers.map((w) => option(w, v('worker')))}
        </select></label
      >
      <label>From (UTC)<input type="datetime-local" name="from" value="${v('from')}" /></label>
      <label>To (UTC)<input type="datetime-local" name="to" value="${v('to')}" /></label>
      <label
        >Search args, result, error<input type="search" name="q" value="${v('q')}" placeholder="text"
      /></label>
      <button class="primary" type="submit">Filter</button>
      <a class="button" href="/tasks">Clear</a>
    </form>
  </section>`;

  const applyForm = req.canWrite
    ? html`<section class="card">
        <h2>Run a task</h2>
        <form
          class="stack"
          data-api-form
          action="/api/tasks/{task}/apply"
          data-url-fields="task"
          data-json-fields="args,kwargs"
          data-then="/tasks/{id}"
        >
          <label
            >Task<select name="task">
              ${taskNames.map((t) => option(t, ''))}
            </select></label
          >
          <label>args (JSON array)<input name="args" placeholder="[]" size="28" /></label>
          <label>kwargs (JSON object)<input name="kwargs" placeholder="{}" size="40" /></label>
          <button class="primary" type="submit">Apply</button>
        </form>
      </section>`
    : '';

  return {
    title: 'Tasks',
    controls: html`${controls}${applyForm}`,
    live: html`<section class="card">
      ${runsTable(
        runs.map((r) => runJson(r, ctx.scrub)),
        { empty: 'No run matches these filters.' },
      )}
      <div class="pager">
        ${page > 1 ? html`<a class="button" href="${pageHref(page - 1)}">← Newer</a>` : ''}
        <span class="muted">page ${page}</span>
        ${hasMore ? html`<a class="button" href="${pageHref(page + 1)}">Older →</a>` : ''}
      </div>
    </section>`,
  };
}
