import { Hono } from 'hono';
import type { WorkerInfo } from '../../runtime/index.ts';
import type { DashboardContext } from '../dashboard-context.ts';
import type { DashboardEnv } from '../dashboard-env.ts';
import { configView } from '../services/index.ts';
import { boundedParam } from './bounded-input.ts';
import { notFound, parseInput } from './http-error.ts';
import {
  autoscaleBody,
  concurrencyBody,
  consumerBody,
  pruneBody,
  queueName,
  rateLimitBody,
} from './input-schemas.ts';
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

  // Flower's controls (Celery's remote control), each a message to the worker (control-channel.ts):
  // it acts when it hears it and its next heartbeat shows the result.
  app.post('/workers/prune', async (c) => {
    const body = parseInput(pruneBody, await readJsonBody(c), 'body');
    const pruned = await ctx.control.pruneWorkers(body.offlineSeconds ?? 0);
    ctx.logger.info(
      { pruned, user: c.get('auth').user },
      `dashboard: pruned ${pruned.length} offline worker(s)`,
    );
    return c.json({ pruned });
  });

  app.post('/workers/:name/autoscale', async (c) => {
    const worker = await findWorker(boundedParam('name', c.req.param('name')));
    const body = parseInput(autoscaleBody, await readJsonBody(c), 'body');
    await ctx.control.autoscale(worker.name, body.max, body.min);
    ctx.logger.info(
      { worker: worker.name, user: c.get('auth').user },
      `dashboard: autoscale ${body.min}–${body.max}`,
    );
    return c.json({ worker: worker.name, autoscale: { max: body.max, min: body.min }, sent: true }, 202);
  });

  app.post('/workers/:name/pool-restart', async (c) => {
    const worker = await findWorker(boundedParam('name', c.req.param('name')));
    await ctx.control.poolRestart(worker.name);
    ctx.logger.info({ worker: worker.name, user: c.get('auth').user }, 'dashboard: pool restart');
    return c.json({ worker: worker.name, poolRestart: true, sent: true }, 202);
  });

  app.post('/workers/:name/consumers/:action{add|cancel}', async (c) => {
    const worker = await findWorker(boundedParam('name', c.req.param('name')));
    const { queue } = parseInput(consumerBody, await readJsonBody(c), 'body');
    const action = c.req.param('action');
    if (action === 'add') await ctx.control.addConsumer(worker.name, queue);
    else await ctx.control.cancelConsumer(worker.name, queue);
    ctx.logger.info(
      { worker: worker.name, queue, user: c.get('auth').user },
      `dashboard: ${action} consumer ${queue}`,
    );
    return c.json({ worker: worker.name, queue, action, sent: true }, 202);
  });

  app.post('/workers/:name/shutdown', async (c) => {
    const worker = await findWorker(boundedParam('name', c.req.param('name')));
    await ctx.control.shutdown(worker.name);
    ctx.logger.warn({ worker: worker.name, user: c.get('auth').user }, 'dashboard: worker shutdown');
    return c.json({ worker: worker.name, shutdown: true }, 202);
  });

  app.get('/config', (c) => c.json(configView(ctx)));

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

  app.post('/queues/:name/rate-limit', async (c) => {
    const queue = parseInput(queueName, boundedParam('queue', c.req.param('name')), 'path', 'queue');
    const body = parseInput(rateLimitBody, await readJsonBody(c), 'body');
    const limit = body.max === null ? null : { max: body.max, durationMs: body.durationMs };
    await ctx.control.setRateLimit(queue, limit);
    ctx.logger.info(
      { queue, limit, user: c.get('auth').user },
      limit === null
        ? `dashboard: rate limit of ${queue} removed`
        : `dashboard: rate limit of ${queue}: ${limit.max} per ${limit.durationMs} ms`,
    );
    return c.json({ queue, rateLimit: limit });
  });

  return app;
}
