import type { Settings } from '../config/index.ts';
import type { Pool } from '../db/index.ts';
import type { Logger } from '../log/index.ts';
import type { AnyTaskDefinition, BrokerProbe } from '../tasks/index.ts';
import { toErrorInfo, type ErrorInfo } from './errors.ts';
import { runHistory } from './run-history.ts';

export type ExecutionOutcome = { ok: true; result: unknown } | { ok: false; error: ErrorInfo };

/** Runs one task body with its context; never throws: the outcome says what happened. */
export async function executeTask(options: {
  task: AnyTaskDefinition;
  args: Record<string, unknown>;
  pool: Pool;
  settings: Settings;
  logger: Logger;
  signal: AbortSignal;
  runId: string;
  attempt: number;
  broker: BrokerProbe | undefined;
  now?: () => Date;
}): Promise<ExecutionOutcome> {
  const logger = options.logger.child({
    task: options.task.name,
    runId: options.runId,
    attempt: options.attempt,
  });
  logger.info(`task ${options.task.name} started`);
  const started = performance.now();
  try {
    const result = await options.task.run(
      {
        pool: options.pool,
        settings: options.settings,
        logger,
        signal: options.signal,
        runId: options.runId,
        attempt: options.attempt,
        broker: options.broker,
        runs: runHistory(options.pool),
        now: options.now ?? (() => new Date()),
      },
      options.args,
    );
    logger.info(
      { durationMs: Math.round(performance.now() - started) },
      `task ${options.task.name} succeeded`,
    );
    return { ok: true, result: result ?? null };
  } catch (error) {
    const info = toErrorInfo(error, options.signal.aborted);
    logger.warn(
      { err: { name: info.name, message: info.message, code: info.code } },
      `task ${options.task.name} failed: ${info.message}`,
    );
    return { ok: false, error: info };
  }
}
