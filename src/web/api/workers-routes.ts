import { Hono } from 'hono';
import { sendControl, type WorkerInfo } from '../../runtime/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import type { DashboardEnv } from '../dashboard-env.ts';
import { boundedParam } from './bounded-input.ts';
import { notFound, parseInput } from './http-error.ts';
import { concurrencyBody, queueName } from './input-schemas.ts';
import { readJsonBody } from './read-body.ts';

export function workerJson(w: WorkerInfo, now: Date) {
  return {
    name: w.name,
    host: w.host,
    pid: w.pid,
    queues: w.queues,
    concurrency: w.concurrency,
    active: w.active,
    processed: w.processed,
    failed: w.failed,
    recycled: w.recycled,
    rssBytes: w.rssBytes,
    startedAt: w.startedAt.toISOString(),
    lastHeartbeat: w.lastHeartbeat.toISOString(),
    uptimeSeconds: Math.max(0, Math.round((now.getTime() - w.startedAt.getTime()) / 1000)),
    online: w.online,
  };
}

/** Workers (from their heartbeats) and queues (from the broker), and their controls. */
export function workersRoutes(ctx: DashboardContext): Hono<DashboardEnv> {
  const app = new Hono<DashboardEnv>();
  const findWorker = async (name: string): Promise<WorkerInfo> => {
    const worker = (await ctx.control.workers()).find((w) => w.name === name);
    if (worker === undefined) throw notFound(`worker ${name}`);
    return worker;
  };

  app.get('/workers', async (c) => {
    const now = new Date();
    return c.json({ workers: (await ctx.control.workers()).map((w) => workerJson(w, now)) });
  });

  app.post('/workers/:name/concurrency', async (c) => {
    const worker = await findWorker(boundedParam('name', c.req.param('name')));
    const body = parseInput(concurrencyBody, await readJsonBody(c), 'body');
    await ctx.control.setConcurrency(worker.name, body.concurrency);
    ctx.logger.info(
      { worker: worker.name, user: c.get('auth').user },
      `dashboard: concurrency ${body.concurrency}`,
    );
    return c.json({ worker: worker.name, concurrency: body.concurrency, sent: true }, 202);
  });

  app.post('/workers/:name/shutdown', async (c) => {
    const worker = await findWorker(boundedParam('name', c.req.param('name')));
    await sendControl(ctx.pool, { action: 'shutdown', worker: worker.name });
    ctx.logger.warn({ worker: worker.name, user: c.get('auth').user }, 'dashboard: worker shutdown');
    return c.json({ worker: worker.name, shutdown: true }, 202);
  });

  app.get('/queues', async (c) =>
    c.json({ broker: ctx.runtime.broker.kind, queues: await ctx.control.queueCounts() }),
  );

  app.post('/queues/:name/:action{pause|resume}', async (c) => {
    const queue = parseInput(queueName, boundedParam('queue', c.req.param('name')), 'path', 'queue');
    const action = c.req.param('action');
    if (action === 'pause') await ctx.control.pause(queue);
    else await ctx.control.resume(queue);
    ctx.logger.info({ queue, user: c.get('auth').user }, `dashboard: ${action} ${queue}`);
    return c.json({ queue, paused: action === 'pause' });
  });

  return app;
}
