import { Command } from 'commander';
import { runHistory } from '../../runtime/index.ts';
import { taskRegistry, type HealthReport } from '../../tasks/index.ts';
import { createRuntimeFor, openContext } from '../context.ts';

const exitCodes = { healthy: 0, degraded: 1, unhealthy: 2 } as const;

export function healthCommand(): Command {
  return new Command('health')
    .description(
      'check database, broker, schedules, freshness, backlog, failures, lag, anomalies (exit 0/1/2)',
    )
    .option('--json', 'print the full report as JSON')
    .action(async (flags: { json?: boolean }) => {
      const ctx = await openContext({ name: 'health', logLevel: 'warn' });
      let report: HealthReport;
      try {
        // Without a runtime (the broker unreachable, migrations missing) the broker checks say why.
        let unavailable = new Error('cannot connect to the broker');
        const runtime = await createRuntimeFor(ctx).catch((error: unknown) => {
          if (error instanceof Error) unavailable = error;
          return undefined;
        });
        report = await taskRegistry.health_check.run(
          {
            pool: ctx.db.pool,
            settings: ctx.settings,
            logger: ctx.logger,
            signal: AbortSignal.timeout(60_000),
            runId: 'cli',
            attempt: 1,
            broker: runtime?.broker ?? {
              kind: ctx.settings.brokerUrl === undefined ? 'postgres' : 'redis',
              ping: () => Promise.reject(unavailable),
              counts: () => Promise.reject(unavailable),
            },
            runs: runHistory(ctx.db.pool),
            now: () => new Date(),
          },
          {},
        );
        await runtime?.close();
      } finally {
        await ctx.close();
      }
      if (flags.json === true) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        process.stdout.write(`${report.status}\n`);
        for (const [name, check] of Object.entries(report.checks)) {
          process.stdout.write(`  ${check.status.padEnd(9)} ${name.padEnd(20)} ${check.detail}\n`);
        }
      }
      process.exitCode = exitCodes[report.status];
    });
}
