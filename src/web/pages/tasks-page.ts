import { childCounts, runStates } from '../../runtime/index.ts';
import { parseInput, runListQuery } from '../api/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import { html } from '../html/index.ts';
import { searchRuns, settle } from '../queries/index.ts';
import { runJson } from '../services/index.ts';
import { readFailures, runsTable } from './components.ts';
import type { PageRequest, PageResult } from './page-types.ts';

/** A link to the task list with these filters: empty parameters are left out. */
export function tasksHref(query: Record<string, string>): string {
  const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== ''));
  const search = params.toString();
  return search === '' ? '/tasks' : `/tasks?${search}`;
}

/**
 * The run history with filters (task, state, worker, time range, text), paginated, live. A
 * backfill's window runs are left out unless asked for (or a task is chosen): each backfill says
 * how many it has, and lists them on its page.
 */
export async function tasksPage(ctx: DashboardContext, req: PageRequest): Promise<PageResult> {
  const query = parseInput(runListQuery, req.query, 'query');
  const limit = query.limit ?? 50;
  const page = query.page ?? 1;
  const showChildren = query.children === '1' || query.task !== undefined;
  const [runsRead, workersRead] = await Promise.all([
    settle(
      'the runs',
      searchRuns(ctx.pool, { ...query, topLevel: !showChildren }, { limit, offset: (page - 1) * limit }),
    ),
    // The filter's workers: the 100 heard from last.
    settle(
      'the workers',
      ctx.control.workers().then((all) =>
        all
          .sort((a, b) => b.lastHeartbeat.getTime() - a.lastHeartbeat.getTime())
          .slice(0, 100)
          .map((w) => w.name),
      ),
    ),
  ]);
  const { runs, hasMore } = runsRead.ok ? runsRead.value : { runs: [], hasMore: false };
  const workers = workersRead.ok ? workersRead.value : [];
  const countsRead = await settle(
    'the child runs',
    childCounts(
      ctx.pool,
      runs.filter((r) => r.task === 'backfill_aggregations').map((r) => r.id),
    ),
  );
  const taskNames = [...ctx.runtime.tasks.keys()].sort();
  const v = (name: string): string => req.query[name] ?? '';
  const pageHref = (p: number): string => tasksHref({ ...req.query, page: p === 1 ? '' : String(p) });
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
          ${option('', v('state'), 'any')}${runStates.map((s) => option(s, v('state')))}
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
      <label class="check"
        ><input type="checkbox" name="children" value="1" ${query.children === '1' ? html`checked` : ''} />
        backfill windows</label
      >
      <button class="primary" type="submit">Filter</button>
      <a class="button" href="/tasks">Clear</a>
    </form>
  </section>`;

  const tasks = [...ctx.runtime.tasks.values()].sort((a, b) => a.name.localeCompare(b.name));
  const applyForm = req.canWrite
    ? html`<section class="card">
        <h2>Run a task</h2>
        <form
          class="stack"
          data-api-form
          action="/api/tasks/{task}/apply"
          data-url-fields="task"
          data-json-fields="args,kwargs"
          data-number-fields="countdown"
          data-then="/tasks/{id}"
        >
          <label
            >Task<select name="task" data-hints="apply-hint">
              ${tasks.map(
                (t) =>
                  html`<option
                    value="${t.name}"
                    data-description="${t.description}"
                    data-args="${JSON.stringify(t.positional)}"
                    data-kwargs="${JSON.stringify(Object.fromEntries(t.positional.map((p) => [p, '…'])))}"
                  >
                    ${t.name}
                  </option>`,
              )}
            </select></label
          >
          <label>args (JSON array)<input name="args" placeholder="[]" size="28" /></label>
          <label>kwargs (JSON object)<input name="kwargs" placeholder="{}" size="40" /></label>
          <label
            >Countdown (seconds)<input
              name="countdown"
              type="number"
              min="0"
              max="604800"
              placeholder="0"
              style="width:110px"
          /></label>
          <button class="primary" type="submit">Apply</button>
        </form>
        <p class="muted" id="apply-hint">
          ${tasks[0] === undefined ? '' : taskHint(tasks[0].description, tasks[0].positional)}
        </p>
      </section>`
    : '';

  return {
    title: 'Tasks',
    controls: html`${controls}${applyForm}`,
    live: html`${readFailures([runsRead, workersRead, countsRead])}
      <section class="card">
        ${runsTable(
          runs.map((r) => runJson(r, ctx.scrub)),
          {
            empty: 'No run matches these filters.',
            childCounts: countsRead.ok ? countsRead.value : undefined,
          },
        )}
        <div class="pager">
          ${page > 1 ? html`<a class="button" href="${pageHref(page - 1)}">← Newer</a>` : ''}
          <span class="muted">page ${page}</span>
          ${hasMore ? html`<a class="button" href="${pageHref(page + 1)}">Older →</a>` : ''}
          ${showChildren ? '' : html`<span class="muted">backfill window runs hidden</span>`}
        </div>
      </section>`,
  };
}

/** What a task does and its arguments, in order (the client script updates it as the task changes). */
export function taskHint(description: string, positional: readonly string[]): string {
  return positional.length === 0
    ? `${description}. No arguments.`
    : `${description}. Arguments, in order: ${positional.join(', ')} (args as a list, or kwargs by name).`;
}
