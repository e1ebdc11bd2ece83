import { Command } from 'commander';
import { createControl, TaskFailedError } from '../../runtime/index.ts';
import { InvalidTaskArgsError, granularities } from '../../tasks/index.ts';
import { createRuntimeFor, openContext } from '../context.ts';
import { createProgressBar } from '../progress-bar.ts';
import { UsageError } from '../usage.error.ts';

export function backfillCommand(): Command {
  return new Command('backfill')
    .description('recompute rollups over a date range in parallel windows; rerun to resume after a crash')
    .option('--start <date>', 'ISO date or date-time (ANALYTICS_TIMEZONE unless it has an offset)')
    .option('--end <date>', 'ISO date or date-time, after --start')
    .option('--granularity <g>', `one of ${granularities.join(', ')}`, 'hourly')
    .option('-w, --wait', 'show progress and wait until done (Ctrl-C cancels the backfill)')
    .option('--status <runId>', 'show the progress of a backfill')
    .option('--cancel <runId>', 'cancel a backfill: windows not done are skipped, running ones terminated')
    .action(
      async (flags: {
        start?: string;
        end?: string;
        granularity: string;
        wait?: boolean;
        status?: string;
        cancel?: string;
      }) => {
        const ctx = await openContext({ name: 'backfill', logLevel: 'warn' });
        const runtime = await createRuntimeFor(ctx);
        const control = createControl(runtime);
        const print = (value: unknown): void =>
          void process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
        try {
          if (flags.status !== undefined) return print(await control.backfillProgress(flags.status));
          if (flags.cancel !== undefined) return print(await control.cancelBackfill(flags.cancel));
          if (flags.start === undefined || flags.end === undefined)
            throw new UsageError('--start and --end are required');
          let result;
          try {
            result = await runtime.enqueue('backfill_aggregations', {
              kwargs: { start_date: flags.start, end_date: flags.end, granularity: flags.granularity },
            });
          } catch (error) {
            if (error instanceof InvalidTaskArgsError) throw new UsageError(error.message);
            throw error;
          }
          const first = await control.backfillProgress(result.id);
          process.stderr.write(
            `backfill ${result.id}: ${first?.total ?? 0} window(s) of ${first?.refreshes.total ?? 0} rollup refreshes, ${first?.done ?? 0} window(s) already done\n`,
          );
          if (flags.wait !== true) return print({ runId: result.id, progress: first });
          // Counted in rollup refreshes (a window refreshes each rollup of the granularity, one
          // transaction each), so that a backfill of one window moves too.
          const bar = createProgressBar({ label: 'backfill', total: first?.refreshes.total ?? 0 });
          let cancelled = false;
          const onSignal = (): void => {
            if (cancelled) process.exit(130);
            cancelled = true;
            process.stderr.write('\ncancelling the backfill…\n');
            void control.cancelBackfill(result.id);
          };
          process.on('SIGINT', onSignal);
          for (;;) {
            const p = await control.backfillProgress(result.id);
            // As a share of the refreshes now known (a window planned before migration 000017
            // counts one until a worker claims it), on the bar's total.
            const perWindow = p === undefined || p.total === 0 ? 0 : p.refreshes.total / p.total;
            const settled = (p?.refreshes.done ?? 0) + perWindow * ((p?.failed ?? 0) + (p?.cancelled ?? 0));
            const total = p?.refreshes.total ?? 0;
            bar.update(total === 0 ? 0 : ((first?.refreshes.total ?? 0) * settled) / total);
            if (await result.ready()) break;
            await new Promise((r) => setTimeout(r, 500));
          }
          bar.finish();
          process.off('SIGINT', onSignal);
          try {
            print(await result.get());
          } catch (error) {
            if (error instanceof TaskFailedError) {
              print({
                runId: result.id,
                state: error.run.state,
                error: error.run.error,
                result: error.run.result,
              });
              process.exitCode = 1;
            } else throw error;
          }
        } finally {
          await runtime.close();
          await ctx.close();
        }
      },
    );
}
