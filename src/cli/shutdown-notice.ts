import type { Logger } from '../log/index.ts';
import { waitForShutdownSignal, type Services } from '../runtime/index.ts';

/**
 * The stop of a process that runs a worker (`aggjobs worker`, `aggjobs start`): signals are heard
 * from the start (a SIGTERM during start-up stops cleanly instead of killing); `current` gets the
 * logger and the services as they come; `untilStop` waits for a signal or for a shutdown of the
 * worker requested from another process, and says what stopping waits for.
 */
export function watchForStop(): {
  current: { logger?: Logger; services?: Services };
  untilStop(what: string, graceSeconds: number | undefined, remoteLine: string): Promise<void>;
} {
  const current: { logger?: Logger; services?: Services } = {};
  const signal = waitForShutdownSignal(() =>
    stopNow(
      () => current.logger,
      () => current.services,
    ),
  );
  return {
    current,
    async untilStop(what, graceSeconds, remoteLine) {
      const { logger, services } = current;
      const remote = services?.worker?.shutdownRequested ?? new Promise<never>(() => undefined);
      const stop = await Promise.race([signal, remote.then(() => 'remote' as const)]);
      if (stop === 'remote') logger?.info(remoteLine);
      else if (logger !== undefined && services !== undefined) {
        logStopping(logger, stop, services, graceSeconds, what);
      }
    },
  };
}

/**
 * What the first Ctrl-C (or SIGTERM) says: what stopping waits for. A worker gives its running
 * tasks the grace period (WORKER_SHUTDOWN_GRACE) and aborts them after it; a second Ctrl-C ends the
 * process at once (waitForShutdownSignal), which the line says too.
 */
export function logStopping(
  logger: Logger,
  signal: NodeJS.Signals,
  services: Services,
  graceSeconds: number | undefined,
  what: string,
): void {
  const running = services.worker?.stats().active ?? 0;
  if (running === 0 || graceSeconds === undefined) {
    logger.info(`${signal}: stopping ${what}`);
    return;
  }
  logger.info(
    `${signal}: stopping ${what}; waiting up to ${graceSeconds} s (WORKER_SHUTDOWN_GRACE) for ${running} running task(s) to finish, then they are aborted. Ctrl-C again to stop now`,
  );
}

/**
 * The second Ctrl-C: said; the running tasks are aborted as at the end of the grace period (their
 * SQL cancelled with their sessions, their transactions rolled back, the runs back to `retrying`),
 * then the process ends.
 */
export function stopNow(
  logger: () => Logger | undefined,
  services: () => Services | undefined = () => undefined,
): void {
  const line = 'second signal: stopping now; running tasks are aborted and their transactions roll back';
  const current = logger();
  if (current === undefined) process.stderr.write(`aggjobs: ${line}\n`);
  else current.warn(line);
  const worker = services()?.worker;
  void (worker === undefined ? Promise.resolve() : worker.abortRunning(3000))
    .catch(() => undefined)
    .finally(() => {
      current?.flush();
      process.exit(130);
    });
}
