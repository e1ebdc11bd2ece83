import type { BaseAdapter } from '@bull-board/api/dist/queueAdapters/base.js';
import type { MiddlewareHandler } from 'hono';
import type { DashboardEnv } from '../dashboard-env.ts';
import { addJob } from './add-job-action.ts';
import { answer, type Action, type ActionRequest, type BullBoardDeps } from './bull-board-action.ts';
import { cleanJobs, pauseQueue, promoteAll, promoteJob, removeJob } from './run-actions.ts';

/** A change Bull Board may not make to the broker behind aggjobs.task_runs, and what to use instead. */
const refuse =
  (error: string, instead: string) =>
  (req: ActionRequest): Promise<Response> =>
    Promise.resolve(answer(req.c, 403, error, instead));

const RETRY = refuse(
  "Bull Board's retry is disabled: in aggjobs a retry is a new run, recorded in aggjobs.task_runs",
  'Retry the run on its page (/tasks/<run id>) or POST /api/tasks/<run id>/retry.',
);
const RUN_ARGS = refuse(
  "a job's data and timing are its run's, validated when it was applied",
  'Revoke the run on its page and apply the task again (/tasks, or POST /api/tasks/<task>/apply with a countdown).',
);
const WHOLE_QUEUE = refuse(
  'emptying or obliterating a queue would drop its runs behind aggjobs.task_runs',
  'Revoke runs one by one (Bull Board\'s "clean" of waiting or delayed jobs revokes them), or `aggjobs control revoke`.',
);
const WORKER_LIMITS = refuse(
  'queue-wide concurrency and rate limits are not how aggjobs limits work',
  "Set a worker's concurrency on the Workers page or with `aggjobs control concurrency`.",
);
const SCHEDULERS = refuse(
  "aggjobs' schedules belong to its beat, not to BullMQ job schedulers",
  'See /schedules; "run now" there enqueues a validated run.',
);
const FLOW_CHILDREN = refuse(
  "a backfill's windows are runs of their own",
  'Cancel the backfill on the Backfill page (/backfill).',
);
const UNKNOWN = refuse(
  'this Bull Board action is not available in aggjobs: it would change the broker behind aggjobs.task_runs',
  'Use the aggjobs dashboard (/tasks, /workers) or `aggjobs control`.',
);

/**
 * Every route of Bull Board 9.10.1 that changes something (node_modules/@bull-board/api
 * dist/routes.js), in its order of registration: the first pattern that matches is the one Bull
 * Board's router would run, so ambiguous paths (`/queues/q/retry/clean`) get the same reading.
 */
const ROUTES: ReadonlyArray<readonly [method: string, pattern: string, action: Action]> = [
  ['PUT', '/api/queues/pause', pauseQueue(true, true)],
  ['PUT', '/api/queues/resume', pauseQueue(false, true)],
  ['POST', '/api/queues/:queueName/add', addJob],
  ['PUT', '/api/queues/:queueName/retry/:queueStatus', RETRY],
  ['PUT', '/api/queues/:queueName/promote', promoteAll],
  ['PUT', '/api/queues/:queueName/clean/:queueStatus', cleanJobs],
  ['PUT', '/api/queues/:queueName/pause', pauseQueue(true, false)],
  ['PUT', '/api/queues/:queueName/resume', pauseQueue(false, false)],
  ['PUT', '/api/queues/:queueName/concurrency', WORKER_LIMITS],
  ['PUT', '/api/queues/:queueName/rate-limit', WORKER_LIMITS],
  ['PUT', '/api/queues/:queueName/rate-limit/release', WORKER_LIMITS],
  ['PUT', '/api/queues/:queueName/empty', WHOLE_QUEUE],
  ['PUT', '/api/queues/:queueName/obliterate', WHOLE_QUEUE],
  ['PUT', '/api/queues/:queueName/job-schedulers/:schedulerId/remove', SCHEDULERS],
  ['PATCH', '/api/queues/:queueName/job-schedulers/:schedulerId', SCHEDULERS],
  ['PUT', '/api/queues/:queueName/job-schedulers/:schedulerId/run', SCHEDULERS],
  ['PUT', '/api/queues/:queueName/:jobId/retry', RETRY],
  ['PUT', '/api/queues/:queueName/:jobId/clean', removeJob],
  ['PUT', '/api/queues/:queueName/:jobId/promote', promoteJob],
  ['PATCH', '/api/queues/:queueName/:jobId/update-data', RUN_ARGS],
  ['PATCH', '/api/queues/:queueName/:jobId/delay', RUN_ARGS],
  ['PATCH', '/api/queues/:queueName/:jobId/priority', RUN_ARGS],
  ['PUT', '/api/queues/:queueName/:jobId/remove-unprocessed-children', FLOW_CHILDREN],
];

const READS = new Set(['GET', 'HEAD']);

/** The decoded parameters of `pattern` in `path`, or undefined when it does not match. */
export function matchRoute(pattern: string, path: string): Record<string, string> | undefined {
  const want = pattern.split('/');
  const got = path.replace(/\/+$/, '').split('/');
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, part] of want.entries()) {
    const value = got[i] ?? '';
    if (part.startsWith(':')) {
      if (value === '') return undefined;
      try {
        params[part.slice(1)] = decodeURIComponent(value);
      } catch {
        return undefined;
      }
    } else if (part !== value) {
      return undefined;
    }
  }
  return params;
}

/**
 * In front of Bull Board (mounted at `basePath`): reads pass; each change goes through aggjobs (add
 * is an enqueue, removing or cleaning unstarted jobs revokes their runs, promote is Control's) or is
 * refused with a 403 naming what to use instead. A change not in the table is refused too, so a
 * route a later Bull Board adds cannot reach the broker unreviewed.
 */
export function guardBullBoard(
  basePath: string,
  adapters: ReadonlyMap<string, BaseAdapter>,
  deps: BullBoardDeps,
): MiddlewareHandler<DashboardEnv> {
  return async (c, next) => {
    if (READS.has(c.req.method)) return await next();
    const path = c.req.path.startsWith(basePath) ? c.req.path.slice(basePath.length) : c.req.path;
    for (const [method, pattern, action] of ROUTES) {
      if (method !== c.req.method) continue;
      const params = matchRoute(pattern, path);
      if (params === undefined) continue;
      const result = await action({ c, params, adapters, deps });
      return result instanceof Response ? result : await next();
    }
    return await UNKNOWN({ c, params: {}, adapters, deps });
  };
}
