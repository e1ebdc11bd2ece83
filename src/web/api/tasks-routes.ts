import { Hono } from 'hono';
import { RunNotFoundError, RunNotRetryableError } from '../../runtime/index.ts';
import { findTask } from '../../tasks/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import type { DashboardEnv } from '../dashboard-env.ts';
import { searchRuns } from '../queries/index.ts';
import { runJson } from '../services/index.ts';
import { boundedParam } from './bounded-input.ts';
import { HttpError, notFound, parseInput } from './http-error.ts';
import { applyBody, revokeBody, runListQuery, timeLimitsBody } from './input-schemas.ts';
import { readJsonBody } from './read-body.ts';

/**
 * The run history and what can be done to a run: apply, retry, revoke, terminate. Revoking or
 * terminating a backfill's run cancels the backfill (action `cancelling`).
 */
export function tasksRoutes(ctx: DashboardContext): Hono<DashboardEnv> {
  const app = new Hono<DashboardEnv>();

  app.get('/task-types', (c) =>
    c.json({
      tasks: [...ctx.runtime.tasks.values()].map((t) => ({
        name: t.name,
        queue: t.queue,
        description: t.description,
        positional: t.positional,
        schedule: t.schedule?.cron ?? null,
      })),
    }),
  );

  app.get('/tasks', async (c) => {
    const query = parseInput(runListQuery, c.req.query(), 'query');
    const limit = query.limit ?? 50;
    const page = query.page ?? 1;
    const { runs, hasMore } = await searchRuns(ctx.pool, query, { limit, offset: (page - 1) * limit });
    return c.json({ runs: runs.map((r) => runJson(r, ctx.scrub)), page, limit, hasMore });
  });

  app.get('/tasks/:id', async (c) => {
    const id = boundedParam('id', c.req.param('id'));
    const run = await ctx.control.run(id);
    if (run === undefined) throw notFound(`run ${id}`);
    const children = await ctx.control.runs({ parentId: run.id, limit: 1000 });
    return c.json({
      run: runJson(run, ctx.scrub),
      children: children.map((r) => runJson(r, ctx.scrub)),
    });
  });

  app.post('/tasks/:name/apply', async (c) => {
    const name = boundedParam('name', c.req.param('name'));
    if (!ctx.runtime.tasks.has(name)) findTask(ctx.runtime.tasks, name); // throws UnknownTaskError → 404
    const body = parseInput(applyBody, await readJsonBody(c), 'body');
    const result = await ctx.runtime.enqueue(
      name,
      { args: body.args ?? [], kwargs: body.kwargs ?? {} },
      body.countdown === undefined ? {} : { countdown: body.countdown },
    );
    ctx.logger.info({ task: name, runId: result.id, user: c.get('auth').user }, `dashboard: applied ${name}`);
    return c.json({ id: result.id, task: name, state: (await result.state()) ?? 'queued' }, 202);
  });

  // Celery's time_limit: every running worker gives the task these limits from its next run.
  app.post('/tasks/:name/time-limits', async (c) => {
    const name = boundedParam('name', c.req.param('name'));
    const task = findTask(ctx.runtime.tasks, name); // UnknownTaskError → 404
    const body = parseInput(timeLimitsBody, await readJsonBody(c), 'body');
    await ctx.control.setTimeLimits(task.name, body.soft, body.hard);
    ctx.logger.info(
      { task: task.name, user: c.get('auth').user },
      `dashboard: time limits of ${task.name}: soft ${body.soft} s, hard ${body.hard} s`,
    );
    return c.json({ task: task.name, soft: body.soft, hard: body.hard, sent: true }, 202);
  });

  app.post('/tasks/:id/retry', async (c) => {
    const id = boundedParam('id', c.req.param('id'));
    const result = await ctx.control.retry(id).catch((error: unknown) => {
      if (error instanceof RunNotFoundError) throw notFound(`run ${id}`);
      if (error instanceof RunNotRetryableError) throw new HttpError(409, error.message);
      throw error;
    });
    ctx.logger.info({ runId: id, newRunId: result.id, user: c.get('auth').user }, `dashboard: retried ${id}`);
    return c.json({ id: result.id, task: result.task, retryOf: id, state: 'queued' }, 202);
  });

  // promote: a delayed run (countdown, retry backoff) may start now; it keeps its id. revoke and
  // terminate: a backfill's run is cancelled instead (Control.revoke): its windows stop, then the run ends.
  for (const verb of ['promote', 'revoke', 'terminate'] as const) {
    app.post(`/tasks/:id/${verb}`, async (c) => {
      const id = boundedParam('id', c.req.param('id'));
      const terminate =
        verb === 'revoke' && parseInput(revokeBody, await readJsonBody(c), 'body').terminate === true;
      if ((await ctx.control.run(id)) === undefined) throw notFound(`run ${id}`);
      const outcome: { action: string } =
        verb === 'promote'
          ? await ctx.control.promote(id)
          : verb === 'revoke'
            ? await ctx.control.revoke(id, { terminate })
            : await ctx.control.terminate(id);
      const did = outcome.action === 'cancelling' ? 'cancel backfill' : verb;
      ctx.logger.info(
        { runId: id, action: outcome.action, user: c.get('auth').user },
        `dashboard: ${did} ${id}`,
      );
      return c.json(outcome);
    });
  }

  return app;
}
