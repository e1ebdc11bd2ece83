import type { Logger } from '../log/index.ts';
import type { Services } from '../runtime/index.ts';

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
