import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { HonoAdapter } from '@bull-board/hono';
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono, type MiddlewareHandler } from 'hono';
import type { Queue } from 'bullmq';
import type { Broker } from '../../runtime/index.ts';
import { queueNames } from '../../tasks/index.ts';
import type { DashboardEnv } from '../dashboard-env.ts';

export const BULL_BOARD_PATH = '/queues';

/** Bull Board's page links a Google Fonts stylesheet: dropped, so nothing leaves a closed network. */
const dropExternalFonts: MiddlewareHandler<DashboardEnv> = async (c, next) => {
  await next();
  if (!(c.res.headers.get('content-type') ?? '').includes('text/html')) return;
  const page = await c.res.text();
  const headers = new Headers(c.res.headers);
  headers.delete('content-length');
  c.res = new Response(page.replace(/<link[^>]+fonts\.(googleapis|gstatic)\.com[^>]*>/g, ''), {
    status: c.res.status,
    headers,
  });
};

/**
 * Bull Board (job-level detail of the BullMQ queues) under /queues, on either broker: Bull Board
 * 9.10 reads BullMQ 6 queues through their backend, Redis or PostgreSQL alike. Retrying a job from
 * Bull Board is disabled: a retry must be a new run in aggjobs.task_runs (the Task page's Retry), and
 * each job links to its run's page.
 */
export function bullBoardRoutes(broker: Broker): Hono<DashboardEnv> {
  const serverAdapter = new HonoAdapter(serveStatic);
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  createBullBoard({
    queues: queueNames.map(
      (name) =>
        new BullMQAdapter(broker.queue(name) as unknown as Queue, {
          allowRetries: false,
          description: `${broker.kind === 'redis' ? 'Redis' : 'PostgreSQL'} broker`,
          externalJobUrl: (job) => ({
            displayText: 'aggjobs run',
            href: `/tasks/${encodeURIComponent(String(job.id))}`,
          }),
        }),
    ),
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: 'aggjobs queues',
        hideDocsLink: true,
        miscLinks: [{ text: '← aggjobs dashboard', url: '/' }],
      },
    },
  });
  const app = new Hono<DashboardEnv>();
  app.use('*', dropExternalFonts);
  app.route('/', serverAdapter.registerPlugin() as unknown as Hono<DashboardEnv>);
  return app;
}
