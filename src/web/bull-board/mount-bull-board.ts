import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { HonoAdapter } from '@bull-board/hono';
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono, type MiddlewareHandler } from 'hono';
import type { Queue } from 'bullmq';
import { queueNames } from '../../tasks/index.ts';
import type { DashboardEnv } from '../dashboard-env.ts';
import type { BullBoardDeps } from './bull-board-action.ts';
import { guardBullBoard } from './guard-bull-board.ts';

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
 * 9.10 reads BullMQ 6 queues through their backend, Redis or PostgreSQL alike. aggjobs.task_runs is
 * the authority on every run and a job only its wake-up, so Bull Board's changes pass through
 * guardBullBoard: adding a job is an enqueue, removing an unstarted job revokes its run, promoting
 * is Control's, and the rest (retry: a retry is a new run, from the Task page) is refused. Each job
 * links to its run's page.
 */
export function bullBoardRoutes(deps: BullBoardDeps): Hono<DashboardEnv> {
  const { broker } = deps.runtime;
  const serverAdapter = new HonoAdapter(serveStatic);
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  const adapters = new Map(
    queueNames.map(
      (name) =>
        [
          name,
          new BullMQAdapter(broker.queue(name) as unknown as Queue, {
            allowRetries: false,
            description: `${broker.kind === 'redis' ? 'Redis' : 'PostgreSQL'} broker`,
            externalJobUrl: (job) => ({
              displayText: 'aggjobs run',
              href: `/tasks/${encodeURIComponent(String(job.id))}`,
            }),
          }),
        ] as const,
    ),
  );
  createBullBoard({
    queues: [...adapters.values()],
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
  app.use('*', guardBullBoard(BULL_BOARD_PATH, adapters, deps));
  app.route('/', serverAdapter.registerPlugin() as unknown as Hono<DashboardEnv>);
  return app;
}
