import { Command } from 'commander';
import { nextRunTimes, startServices, waitForShutdownSignal } from '../../runtime/index.ts';
import { createRuntimeFor, openContext } from '../context.ts';
import { UsageError } from '../usage.error.ts';
import { checkLogLevel } from './worker.ts';

export function beatCommand(): Command {
  return new Command('beat')
    .description('enqueue the periodic tasks on schedule; several may run, one leads (Celery beat)')
    .option('--catchup <policy>', 'missed slots after downtime: once, all or none (default BEAT_CATCHUP)')
    .option('--next', 'print the next run time of each schedule and exit')
    .option('-l, --loglevel <level>', 'trace, debug, info, warn, error')
    .action(async (flags: { catchup?: string; next?: boolean; loglevel?: string }) => {
      // Listening from the start: a SIGTERM during start-up stops cleanly instead of killing.
      const shutdown = waitForShutdownSignal();
      if (flags.catchup !== undefined && !['once', 'all', 'none'].includes(flags.catchup)) {
        throw new UsageError(
          `--catchup must be one of once, all, none, got ${JSON.stringify(flags.catchup)}`,
        );
      }
      const ctx = await openContext({
        name: 'beat',
        logLevel: flags.next === true ? 'warn' : checkLogLevel(flags.loglevel),
      });
      const runtime = await createRuntimeFor(ctx);
      try {
        if (flags.next === true) {
          for (const s of nextRunTimes(runtime.tasks, ctx.settings)) {
            process.stdout.write(`${s.task.padEnd(28)} ${s.nextRunAt?.toISOString() ?? 'disabled'}\n`);
          }
          return;
        }
        const services = await startServices(runtime, {
          beat: { catchup: flags.catchup as 'once' | 'all' | 'none' | undefined },
        });
        const signal = await shutdown;
        ctx.logger.info(`${signal}: stopping`);
        await services.close();
      } finally {
        await runtime.close();
        await ctx.close();
      }
    });
}
