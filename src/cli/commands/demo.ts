import { Command } from 'commander';
import { prepareDatabase } from '../../rollups/index.ts';
import {
  checkSeedOptions,
  checkTrafficOptions,
  demoDefaults,
  isDemoSeeded,
  runTraffic,
  seedDemoData,
  WorkloadOptionError,
  type SeedOptions,
  type TrafficOptions,
  type TrafficStats,
} from '../../workload/index.ts';
import { openContext } from '../context.ts';
import { createProgressBar } from '../progress-bar.ts';
import { UsageError } from '../usage.error.ts';

/** The command-line flag of each workload option, for messages. */
const flags: Record<string, string> = {
  seed: '--seed',
  days: '--days',
  executionsPerDay: '--executions-per-day',
  workspaces: '--workspaces',
  users: '--users',
  end: '--end',
  rate: '--rate',
  durationSeconds: '--duration',
};

function integer(flag: string, raw: string): number {
  if (!/^\s*\d+\s*$/.test(raw))
    throw new UsageError(`${flag} must be a whole number, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

function time(flag: string, raw: string): Date {
  const value = new Date(raw);
  if (!/^\d{4}-\d{2}-\d{2}/.test(raw) || Number.isNaN(value.getTime())) {
    throw new UsageError(
      `${flag} must be an ISO 8601 time such as 2026-11-01T00:00:00Z, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

/** Runs a workload check, turning its error into a usage error that names the flag. */
function checked<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof WorkloadOptionError) {
      const value = error.value instanceof Date ? error.value.toISOString() : String(error.value);
      throw new UsageError(
        `${flags[error.field] ?? error.field} must be ${error.rule}, got ${JSON.stringify(value)}`,
      );
    }
    throw error;
  }
}

const number = (n: number): string => n.toLocaleString('en-US');

function seedCommand(): Command {
  return new Command('seed')
    .description('load deterministic, realistic history into the source tables (generated inside PostgreSQL)')
    .option('--seed <n>', 'random seed: the same seed gives the same rows', String(demoDefaults.seed))
    .option('--days <n>', 'days of history, ending at --end', String(demoDefaults.days))
    .option('--executions-per-day <n>', 'workflow executions per day', String(demoDefaults.executionsPerDay))
    .option('--workspaces <n>', 'workspaces (Zipf-skewed activity)', String(demoDefaults.workspaces))
    .option('--users <n>', 'users, spread over the workspaces', String(demoDefaults.users))
    .option('--end <time>', 'end of the history (exclusive); default: the current hour')
    .action(
      async (raw: {
        seed: string;
        days: string;
        executionsPerDay: string;
        workspaces: string;
        users: string;
        end?: string;
      }) => {
        const options: SeedOptions = {
          seed: integer('--seed', raw.seed),
          days: integer('--days', raw.days),
          executionsPerDay: integer('--executions-per-day', raw.executionsPerDay),
          workspaces: integer('--workspaces', raw.workspaces),
          users: integer('--users', raw.users),
          end: raw.end === undefined ? undefined : time('--end', raw.end),
        };
        const resolved = checked(() => checkSeedOptions(options));
        const ctx = await openContext({ name: 'demo seed' });
        try {
          await prepareDatabase(ctx.db.pool, ctx.settings);
          if (await isDemoSeeded(ctx.db.pool)) {
            ctx.logger.warn('public.execution_logs already has rows: the seeded rows are added to them');
          }
          const bar = createProgressBar({
            label: 'seeding',
            total: resolved.days * resolved.executionsPerDay,
          });
          const result = await seedDemoData(ctx.db.pool, resolved, (p) => bar.update(p.done));
          bar.finish();
          process.stdout.write(
            `seeded ${number(result.executions)} executions, ${number(result.activityEvents)} activity events and ` +
              `${number(result.creditTransactions)} credit transactions ` +
              `(${resolved.days} days to ${resolved.end.toISOString()}) in ${(result.durationMs / 1000).toFixed(1)} s: ` +
              `${number(result.rowsPerSecond)} rows/s\n`,
          );
        } finally {
          await ctx.close();
        }
      },
    );
}

function describeTraffic(stats: TrafficStats): string {
  const seconds = stats.elapsedMs / 1000;
  return (
    `${number(stats.writes)} writes in ${seconds.toFixed(1)} s (${(stats.writes / Math.max(seconds, 0.001)).toFixed(1)}/s): ` +
    `${number(stats.inserts)} inserts, ${number(stats.completions)} completions, ${number(stats.lateRows)} late rows, ` +
    `${number(stats.errors)} errors, ${number(stats.running)} still running`
  );
}

function trafficCommand(): Command {
  return new Command('traffic')
    .description(
      'stream live writes (executions starting and ending, activity, credits, late rows) until stopped',
    )
    .option('--rate <n>', 'writes per second', '50')
    .option('--duration <seconds>', 'stop after this many seconds (default: at Ctrl-C or SIGTERM)')
    .option('--seed <n>', 'random seed', String(demoDefaults.seed))
    .action(async (raw: { rate: string; duration?: string; seed: string }) => {
      const options: TrafficOptions = {
        rate: integer('--rate', raw.rate),
        durationSeconds: raw.duration === undefined ? undefined : integer('--duration', raw.duration),
        seed: integer('--seed', raw.seed),
      };
      checked(() => checkTrafficOptions(options));
      const ctx = await openContext({ name: 'demo traffic' });
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        await prepareDatabase(ctx.db.pool, ctx.settings);
        let lastLog = 0;
        ctx.logger.info(
          `writing about ${options.rate} rows/s${options.durationSeconds === undefined ? ' until stopped' : ` for ${options.durationSeconds} s`}`,
        );
        const stats = await runTraffic(ctx.db.pool, {
          ...options,
          signal: stop.signal,
          onTick: (s) => {
            if (s.elapsedMs - lastLog < 5000) return;
            lastLog = s.elapsedMs;
            ctx.logger.info({ traffic: s }, describeTraffic(s));
          },
        });
        process.stdout.write(`traffic: ${describeTraffic(stats)}\n`);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await ctx.close();
      }
    });
}

/** `aggjobs demo seed|traffic`: synthetic source data for the demo, benchmarks and fault tests. */
export function demoCommand(): Command {
  return new Command('demo')
    .description('demo data: seed history into the source tables, or stream live traffic')
    .addCommand(seedCommand())
    .addCommand(trafficCommand());
}
