import { formatJob } from '@bull-board/api/dist/handlers/queues.js';
import type { QueueJob } from '@bull-board/api/dist/types.js';
import type { Context } from 'hono';
import { z } from 'zod';
import { InvalidTaskArgsError } from '../../tasks/index.ts';
import { HttpError, parseJsonText, problemsOf, type FieldProblem } from '../api/index.ts';
import type { DashboardEnv } from '../dashboard-env.ts';
import { answer, queueOf, runPage, type Action } from './bull-board-action.ts';

/** Job options aggjobs sets itself from the task (a duplicated job carries them): ignored. */
const TASK_JOB_OPTIONS = new Set(['attempts', 'backoff', 'removeOnComplete', 'removeOnFail', 'jobId']);
const MAX_DELAY_MS = 7 * 86_400_000;

const addJobBody = z.strictObject({
  name: z.string().min(1, 'must be the name of a task'),
  data: z
    .strictObject({ args: z.record(z.string(), z.unknown()).optional() }, 'must be an object { args }')
    .optional(),
  options: z.record(z.string(), z.unknown(), 'must be an object').optional(),
});

/** The request's JSON body (an empty one is `{}`), or why it was refused (see parseJsonText). */
async function jsonBody(c: Context<DashboardEnv>): Promise<unknown> {
  try {
    return parseJsonText(await c.req.text());
  } catch (error: unknown) {
    if (error instanceof HttpError) return error;
    throw error;
  }
}

/**
 * Bull Board's "add job" is `runtime.enqueue`: the task is the job's name and must run on this
 * queue, `data.args` are validated by the task's schema like applyAsync's, the run is recorded as
 * queued and its job id is the run id. Of the job options only `delay` means something (the run's
 * countdown); those aggjobs sets from the task are ignored, any other is refused.
 */
export const addJob: Action = async (req) => {
  const { c, deps } = req;
  const queue = queueOf(req);
  if (queue instanceof Response) return queue;
  const raw = await jsonBody(c);
  if (raw instanceof HttpError) return answer(c, 400, raw.message, undefined, [...raw.problems]);
  const parsed = addJobBody.safeParse(raw);
  if (!parsed.success) {
    const problems = problemsOf(parsed.error);
    return answer(
      c,
      400,
      `invalid job: ${problems.map((p) => `${p.field}: ${p.rule}`).join('; ')}`,
      undefined,
      problems,
    );
  }
  const { name, data, options = {} } = parsed.data;
  const task = deps.runtime.tasks.get(name);
  if (task?.queue !== queue) {
    const here = [...deps.runtime.tasks.values()].filter((t) => t.queue === queue).map((t) => t.name);
    const rule = `must be a task of queue ${queue}: ${here.join(', ')}`;
    const error =
      task === undefined
        ? `unknown task "${name}"`
        : `task ${name} runs on queue ${task.queue}, not ${queue}`;
    return answer(c, 400, error, undefined, [{ field: 'name', rule }]);
  }
  const problems: FieldProblem[] = [];
  let countdown: number | undefined;
  for (const [key, value] of Object.entries(options)) {
    if (key === 'delay') {
      if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= MAX_DELAY_MS) {
        countdown = value / 1000;
      } else {
        problems.push({ field: 'options.delay', rule: `must be an integer from 0 to ${MAX_DELAY_MS} (ms)` });
      }
    } else if (!TASK_JOB_OPTIONS.has(key)) {
      problems.push({
        field: `options.${key}`,
        rule: 'is not supported: a run takes its job options from its task (only delay may be given)',
      });
    }
  }
  if (problems.length > 0) {
    return answer(
      c,
      400,
      `invalid job options: ${problems.map((p) => p.field).join(', ')}`,
      undefined,
      problems,
    );
  }
  let runId: string;
  try {
    const result = await deps.runtime.enqueue(
      name,
      { kwargs: data?.args ?? {} },
      countdown === undefined ? {} : { countdown },
    );
    runId = result.id;
  } catch (error) {
    if (!(error instanceof InvalidTaskArgsError)) throw error;
    return answer(
      c,
      400,
      error.message,
      undefined,
      error.problems.map((p) => ({ field: `data.args.${p.field}`, rule: p.message })),
    );
  }
  deps.logger.info({ task: name, runId, user: c.get('auth').user }, `bull board: applied ${name}`);
  const job = await deps.runtime.broker.queue(queue).getJob(runId);
  const adapter = req.adapters.get(queue);
  if (job === undefined || adapter === undefined) {
    return answer(c, 409, `run ${runId} was queued but its job is already gone`, `see ${runPage(runId)}`);
  }
  return c.json({ job: formatJob(job as unknown as QueueJob, adapter), status: await job.getState() });
};
