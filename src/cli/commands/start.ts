import { Command } from 'commander';
import { redact } from '../../config/index.ts';
import { prepareDatabase } from '../../rollups/index.ts';
import { startServices, type ExtraService, type Runtime } from '../../runtime/index.ts';
import { assertCredentialsForEnv, startDashboard } from '../../web/index.ts';
import { currentHour, demoDefaults, isDemoSeeded, seedDemoData } from '../../workload/index.ts';
import { createRuntimeFor, openContext } from '../context.ts';
import { listenHost } from '../listen-host.ts';
import { watchForStop } from '../shutdown-notice.ts';
import { assertPortFree } from '../port-check.ts';
import { UsageError } from '../usage.error.ts';
import { createProgressBar } from '../progress-bar.ts';
import { addWorkerFlags, checkLogLevel, workerOptionsFrom, type WorkerFlags } from './worker.ts';
import { preparedLines } from './migrate.ts';

/** The rollup tasks run once at start, so the tables fill at once (a never-run rollup recomputes all). */
const warmUp = [
  'hourly_rollup',
  'daily_rollup',
  'weekly_rollup',
  'monthly_rollup',
  'refresh_materialized_views',
];

export interface StartCommandOptions {
  /** Services started with beat and worker, stopped with them (besides the dashboard). */
  extraServices?: ReadonlyArray<(runtime: Runtime) => Promise<ExtraService>>;
}

/** The dashboard on DASHBOARD_PORT and `host` (see listenHost). */
function dashboardService(port: number, host: string): (runtime: Runtime) => Promise<ExtraService> {
  return (runtime) =>
    startDashboard({
      port,
      host,
      pool: runtime.pool,
      settings: runtime.settings,
      runtime,
      logger: runtime.logger,
    });
}

export function startCommand(options: StartCommandOptions = {}): Command {
  return addWorkerFlags(
    new Command('start').description(
      'migrate, seed demo data on a new embedded database, then run beat, worker and dashboard',
    ),
  )
    .option('--demo', 'seed demo data even on DATABASE_URL (when the source tables are empty)')
    .option('--no-demo', 'never seed demo data')
    .option('--no-dashboard', 'do not run the dashboard')
    .option('-p, --port <port>', 'dashboard port (default DASHBOARD_PORT, 5555)')
    .option(
      '--host <host>',
      'dashboard address (default 127.0.0.1 without dashboard credentials, 0.0.0.0 with them)',
    )
    .option('-l, --loglevel <level>', 'trace, debug, info, warn, error')
    .action(
      async (
        flags: WorkerFlags & {
          demo?: boolean;
          dashboard?: boolean;
          port?: string;
          host?: string;
          loglevel?: string;
        },
      ) => {
        const stop = watchForStop();
        const ctx = await openContext({ name: 'start', logLevel: checkLogLevel(flags.loglevel) });
        stop.current.logger = ctx.logger;
        const { logger, settings, db } = ctx;
        // Its port changes on every start. The password stays out of the log (logs get pasted and
        // shipped); `aggjobs db url` prints the whole URL on demand.
        if (db.embedded !== undefined) {
          logger.info(
            `database URL: ${redact(db.url)} (\`aggjobs db psql\` opens psql on it, \`aggjobs db url\` prints it with its password)`,
          );
        }
        try {
          const workerOptions = workerOptionsFrom(flags, settings);
          const port = flags.port === undefined ? settings.dashboardPort : Number(flags.port);
          if (!Number.isInteger(port) || port < 1 || port > 65535) {
            throw new UsageError(
              `--port must be an integer from 1 to 65535, got ${JSON.stringify(flags.port)}`,
            );
          }
          const listen = listenHost(settings, flags.host);
          // Refuse before migrating or seeding: production without dashboard credentials, a port in use.
          if (flags.dashboard !== false) {
            assertCredentialsForEnv(settings);
            await assertPortFree(port, listen.host);
          }
          const prepared = await prepareDatabase(db.pool, settings, {
            onApply: (m) => logger.info(`applying migration ${m.version} ${m.name}`),
          });
          for (const line of preparedLines(prepared, settings)) logger.info(line);

          const wantDemo = flags.demo ?? db.embedded !== undefined;
          if (wantDemo && !(await isDemoSeeded(db.pool))) {
            logger.info('seeding demo data (7 days of synthetic executions, activity and credits)');
            let bar: ReturnType<typeof createProgressBar> | undefined;
            const result = await seedDemoData(db.pool, { ...demoDefaults, end: currentHour() }, (p) => {
              bar ??= createProgressBar({ label: 'seeding', total: p.total });
              bar.update(p.done);
            });
            bar?.finish();
            logger.info(result, `demo data seeded: ${result.executions} executions`);
          }

          const runtime = await createRuntimeFor(ctx);
          logger.info(`broker: ${runtime.broker.describe}`);
          const services = await startServices(runtime, {
            worker: workerOptions,
            beat: {},
            extraServices: [
              ...(flags.dashboard === false ? [] : [dashboardService(port, listen.host)]),
              ...(options.extraServices ?? []),
            ],
          });
          stop.current.services = services;
          if (flags.dashboard !== false) logger.info(`dashboard ${listen.describe}`);
          for (const task of warmUp) await runtime.enqueue(task, {});
          logger.info(`beat and worker running; first refresh of every rollup enqueued. Ctrl-C stops.`);

          const what = `beat, worker${services.extra.length > 0 ? ', services' : ''} and database`;
          // A shutdown of its worker requested from the dashboard stops the whole process: a start
          // without its worker would look alive and run nothing.
          await stop.untilStop(
            what,
            workerOptions.shutdownGraceSeconds,
            `shutdown of its worker requested: stopping ${what}`,
          );
          await services.close();
          await runtime.close();
        } finally {
          await ctx.close();
        }
      },
    );
}
