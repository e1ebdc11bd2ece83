import type { BaseAdapter } from '@bull-board/api/dist/queueAdapters/base.js';
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Logger } from '../../log/index.ts';
import type { Control, Runtime } from '../../runtime/index.ts';
import { queueNames, type QueueName } from '../../tasks/index.ts';
import type { FieldProblem } from '../api/index.ts';
import type { DashboardEnv } from '../dashboard-env.ts';

/** What Bull Board's guarded actions go through: the runtime (enqueue, broker) and Control. */
export interface BullBoardDeps {
  runtime: Runtime;
  control: Control;
  logger: Logger;
}

/** What an action gets: the request, the route's decoded parameters, and the board's adapters. */
export interface ActionRequest {
  c: Context<DashboardEnv>;
  params: Readonly<Record<string, string>>;
  adapters: ReadonlyMap<string, BaseAdapter>;
  deps: BullBoardDeps;
}

/** A response of aggjobs' own, or PASS: Bull Board's handler may run (nothing of a run changes). */
export const PASS = Symbol('pass to Bull Board');
export type Action = (req: ActionRequest) => Promise<Response | typeof PASS>;

/**
 * Errors in a shape both readers understand: aggjobs' API (`error`, `problems`) and Bull Board's
 * UI, which shows `error` as a toast's title and `message` as its text.
 */
export function answer(
  c: Context<DashboardEnv>,
  status: ContentfulStatusCode,
  error: string,
  message?: string,
  problems: readonly FieldProblem[] = [],
): Response {
  return c.json(
    {
      error,
      ...(message === undefined ? {} : { message }),
      ...(problems.length === 0 ? {} : { problems }),
    },
    status,
  );
}

export const runPage = (runId: string): string => `/tasks/${encodeURIComponent(runId)}`;

export function queueOf(req: ActionRequest): QueueName | Response {
  const name = req.params.queueName ?? '';
  const queue = queueNames.find((q) => q === name);
  return queue ?? answer(req.c, 404, `no queue "${name}": the queues are ${queueNames.join(', ')}`);
}
