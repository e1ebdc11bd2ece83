import { Command } from 'commander';
import { builtinRollups, rebuildRollup, type RebuildResult } from '../../rollups/index.ts';
import { openContext } from '../context.ts';
import { compactNumber } from '../../format/index.ts';
import { createProgressBar, type ProgressBar } from '../progress-bar.ts';
import { UsageError } from '../usage.error.ts';

/** `aggjobs rollups rebuild [--rollup NAME]`: the fix a refresh names when it refuses. */
function rebuildCommand(): Command {
  return new Command('rebuild')
    .description(
      'recompute rollups from the source rows in the current ANALYTICS_TIMEZONE, definition and cluster',
    )
    .option('--rollup <name>', 'one rollup table (default: every built-in rollup)')
    .option('--drop-frozen', 'also delete buckets before the retention cutoff (default: keep them as built)')
    .action(async (flags: { rollup?: string; dropFrozen?: boolean }) => {
      const selected =
        flags.rollup === undefined ? builtinRollups : builtinRollups.filter((d) => d.name === flags.rollup);
      if (selected.length === 0)
        throw new UsageError(
          `--rollup must be one of ${builtinRollups.map((d) => d.name).join(', ')}, got ${JSON.stringify(flags.rollup)}`,
        );
      const ctx = await openContext({ name: 'rollups rebuild', logLevel: 'warn' });
      const say = (line: string): void => void process.stderr.write(`${line}\n`);
      const controller = new AbortController();
      const onSignal = (): void => {
        say('\ncancelling: the rollup being rebuilt is left as it was');
        controller.abort();
      };
      process.on('SIGINT', onSignal);
      const results: RebuildResult[] = [];
      try {
        for (const def of selected) {
          let bar: ProgressBar | undefined;
          const result = await rebuildRollup(ctx.db.pool, def, {
            timezone: ctx.settings.analyticsTimezone,
            statementTimeoutMs: ctx.settings.statementTimeoutMs,
            lockTimeoutMs: ctx.settings.lockTimeoutMs,
            dropFrozen: flags.dropFrozen === true,
            signal: controller.signal,
            onPlan: (plan) => {
              for (const change of plan.changes) say(`analytics.${def.name}: ${change.detail}`);
              say(
                `rebuilding analytics.${def.name} in ${ctx.settings.analyticsTimezone}: ` +
                  `${compactNumber(plan.sourceRows)} source row(s) in ${plan.chunks} chunk(s)` +
                  (plan.tableRecreated ? '; its columns or key changed: the table is created again' : ''),
              );
              if (plan.frozenRows > 0)
                say(
                  plan.tableRecreated || flags.dropFrozen === true
                    ? `  ${plan.frozenRows} row(s) of buckets before ${plan.frozenBefore} (retention deleted their source rows) are dropped: they cannot be recomputed`
                    : `  ${plan.frozenRows} row(s) of buckets before ${plan.frozenBefore} are kept as they were built: retention deleted their source rows, so they cannot be recomputed (--drop-frozen deletes them)`,
                );
              bar = createProgressBar({ label: def.name, total: plan.sourceRows });
            },
            onProgress: (done) => bar?.update(done),
          });
          bar?.finish();
          say(
            `  ${result.rowsWritten} row(s) written, ${result.rowsDeleted} old row(s) replaced, ` +
              `${result.frozenRowsKept} frozen kept, ${result.frozenRowsDropped} frozen dropped, ${result.durationMs} ms`,
          );
          results.push(result);
        }
      } finally {
        process.off('SIGINT', onSignal);
        await ctx.close();
      }
      process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    });
}

/** `aggjobs rollups …`: maintenance of the rollup tables. */
export function rollupsCommand(): Command {
  return new Command('rollups')
    .description('maintain the rollup tables (rebuild after a zone, definition or cluster change)')
    .addCommand(rebuildCommand());
}
