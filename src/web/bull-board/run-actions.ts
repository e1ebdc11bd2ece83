import type { Context } from 'hono';
import { queueNames, type QueueName } from '../../tasks/index.ts';
import type { DashboardEnv } from '../dashboard-env.ts';
import { answer, PASS, queueOf, runPage, type Action, type ActionRequest } from './bull-board-action.ts';

const conflictForRunning = (c: Context<DashboardEnv>, runId: string): Response =>
  answer(
    c,
    409,
    `run ${runId} is running: removing its job would not stop it`,
    `Terminate it on its page, ${runPage(runId)}, or POST /api/tasks/${encodeURIComponent(runId)}/terminate.`,
  );

const conflictForFlowParent = (c: Context<DashboardEnv>, what: string): Response =>
  answer(
    c,
    409,
    `${what} for its windows (a backfill): removing it would orphan them`,
    'Cancel the backfill on the Backfill page (/backfill), which cancels its windows.',
  );

/**
 * Removing one job is revoking its run: a queued or retrying run becomes `revoked` (and its job is
 * removed), so the lost-job resend never brings it back. A finished run's leftover job, or a job
 * with no run, is Bull Board's to remove; a running run's job is refused (terminate the run).
 */
export const removeJob: Action = async (req) => {
  const { c, deps } = req;
  const queue = queueOf(req);
  if (queue instanceof Response) return queue;
  const jobId = req.params.jobId ?? '';
  const job = await deps.runtime.broker.queue(queue).getJob(jobId);
  if (job === undefined) return answer(c, 404, `job ${jobId} not found in queue ${queue}`);
  const run = await deps.control.run(jobId);
  if (run === undefined) return PASS;
  if ((await job.getState()) === 'waiting-children') return conflictForFlowParent(c, `job ${jobId} waits`);
  if (run.state === 'running') return conflictForRunning(c, jobId);
  if (run.state !== 'queued' && run.state !== 'retrying') return PASS;
  const outcome = await deps.control.revoke(jobId);
  deps.logger.info(
    { runId: jobId, action: outcome.action, user: c.get('auth').user },
    `bull board: removed the job of ${jobId}`,
  );
  return c.body(null, 204);
};

/**
 * Job states whose jobs are runs not yet started (cleaning them revokes the runs), and the state
 * BullMQ lists them under: BullMQ 6 keeps a paused queue's jobs as waiting.
 */
const UNSTARTED = new Map<string, 'waiting' | 'delayed' | 'prioritized'>([
  ['waiting', 'waiting'],
  ['wait', 'waiting'],
  ['paused', 'waiting'],
  ['delayed', 'delayed'],
  ['prioritized', 'prioritized'],
]);
const PAGE = 500;

/**
 * Cleaning completed or failed jobs only drops finished runs' leftover jobs (the run history is in
 * aggjobs.task_runs): Bull Board's handler runs. Cleaning unstarted jobs revokes every one of their
 * runs; an active job is a running run, and a flow parent a backfill: both refused.
 */
export const cleanJobs: Action = async (req) => {
  const { c, deps } = req;
  const queue = queueOf(req);
  if (queue instanceof Response) return queue;
  const status = req.params.queueStatus ?? '';
  if (status === 'completed' || status === 'failed') return PASS;
  if (status === 'active') {
    return answer(
      c,
      409,
      'active jobs are running runs: removing their jobs would not stop them',
      'Terminate each run on its page (/tasks?state=running).',
    );
  }
  if (status === 'waiting-children')
    return conflictForFlowParent(c, 'each job in state waiting-children waits');
  const unstarted = UNSTARTED.get(status);
  if (unstarted === undefined) {
    return answer(c, 400, `cannot clean jobs in state "${status}"`, undefined, [
      {
        field: 'queueStatus',
        rule: 'must be one of completed, failed, waiting, delayed, prioritized, paused',
      },
    ]);
  }
  const broker = deps.runtime.broker.queue(queue);
  const seen = new Set<string>();
  const counts = { revoked: 0, removed: 0, skipped: 0 };
  for (;;) {
    const jobs = (await broker.getJobs([unstarted], 0, PAGE - 1)).filter(
      (j) => j?.id !== undefined && !seen.has(j.id),
    );
    if (jobs.length === 0) break;
    for (const job of jobs) {
      const id = job.id ?? '';
      seen.add(id);
      const run = await deps.control.run(id);
      if (run?.state === 'queued' || run?.state === 'retrying') {
        await deps.control.revoke(id);
        counts.revoked += 1;
      } else if (run?.state === 'running') {
        counts.skipped += 1;
      } else {
        // A finished run's leftover job, or a job no run owns.
        await job.remove().then(
          () => (counts.removed += 1),
          () => (counts.skipped += 1),
        );
      }
    }
  }
  deps.logger.info(
    { queue, status, ...counts, user: c.get('auth').user },
    `bull board: cleaned ${status} jobs`,
  );
  return c.json(counts);
};

async function promoteOne(
  req: ActionRequest,
  queue: QueueName,
  jobId: string,
): Promise<Response | undefined> {
  const { c, deps } = req;
  const job = await deps.runtime.broker.queue(queue).getJob(jobId);
  if (job === undefined) return answer(c, 404, `job ${jobId} not found in queue ${queue}`);
  const state = await job.getState();
  if (state !== 'delayed') return answer(c, 409, `job ${jobId} is ${state}, not delayed: nothing to promote`);
  if ((await deps.control.run(jobId)) === undefined) {
    return answer(
      c,
      409,
      `job ${jobId} has no run in aggjobs.task_runs: it is not aggjobs' to start`,
      'Remove it, and apply the task from the dashboard instead.',
    );
  }
  const outcome = await deps.control.promote(jobId);
  if (outcome.action === 'none') {
    return answer(
      c,
      409,
      `run ${jobId} is ${outcome.state ?? 'gone'}: only a queued or retrying run can be promoted`,
    );
  }
  deps.logger.info({ runId: jobId, user: c.get('auth').user }, `bull board: promoted ${jobId}`);
  return undefined;
}

/** Promoting a delayed job is Control's promote: the run may start now, with the same run id. */
export const promoteJob: Action = async (req) => {
  const queue = queueOf(req);
  if (queue instanceof Response) return queue;
  return (await promoteOne(req, queue, req.params.jobId ?? '')) ?? req.c.body(null, 204);
};

/** Every delayed job of the queue that has a run, promoted through Control. */
export const promoteAll: Action = async (req) => {
  const queue = queueOf(req);
  if (queue instanceof Response) return queue;
  const jobs = await req.deps.runtime.broker.queue(queue).getJobs(['delayed'], 0, -1);
  let promoted = 0;
  let skipped = 0;
  for (const job of jobs) {
    if (job?.id === undefined) continue;
    if ((await promoteOne(req, queue, job.id)) === undefined) promoted += 1;
    else skipped += 1;
  }
  return req.c.json({ promoted, skipped });
};

/** Pausing or resuming a queue is Control's (the same BullMQ pause the dashboard's Pause does). */
export const pauseQueue =
  (pause: boolean, all: boolean): Action =>
  async (req) => {
    const queue = all ? undefined : queueOf(req);
    if (queue instanceof Response) return queue;
    for (const q of queue === undefined ? queueNames : [queue]) {
      await (pause ? req.deps.control.pause(q) : req.deps.control.resume(q));
    }
    req.deps.logger.info(
      { queue: queue ?? 'all', user: req.c.get('auth').user },
      `bull board: ${pause ? 'paused' : 'resumed'} ${queue ?? 'every queue'}`,
    );
    return req.c.json({});
  };
