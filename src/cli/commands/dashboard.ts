import { Command } from 'commander';
import { waitForShutdownSignal } from '../../runtime/index.ts';
import { assertCredentialsForEnv, PortInUseError, startDashboard } from '../../web/index.ts';
import { createRuntimeFor, openContext } from '../context.ts';
import { listenHost } from '../listen-host.ts';
import { UsageError } from '../usage.error.ts';

function port(raw: string): number {
  const n = /^\s*\d+\s*$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new UsageError(`--port must be an integer from 0 to 65535, got ${JSON.stringify(raw)}`);
  }
  return n;
}

/** `aggjobs dashboard`: Flower's role — pages, JSON API, /metrics, Bull Board at /queues. */
export function dashboardCommand(): Command {
  return new Command('dashboard')
    .description("web dashboard, JSON API and /metrics (in place of Celery's Flower)")
    .option('-p, --port <port>', 'port to listen on (default DASHBOARD_PORT, 5555)')
    .option(
      '--host <host>',
      'address to listen on (default 127.0.0.1 without dashboard credentials, 0.0.0.0 with them)',
    )
    .action(async (options: { port?: string; host?: string }) => {
      // Listening from the start: a SIGTERM during start-up stops cleanly instead of killing.
      const shutdown = waitForShutdownSignal();
      const listenPort = options.port === undefined ? undefined : port(options.port);
      const ctx = await openContext({ name: 'dashboard' });
      try {
        assertCredentialsForEnv(ctx.settings);
        const listen = listenHost(ctx.settings, options.host);
        const runtime = await createRuntimeFor(ctx);
        const server = await startDashboard({
          port: listenPort ?? ctx.settings.dashboardPort,
          host: listen.host,
          pool: ctx.db.pool,
          settings: ctx.settings,
          runtime,
          logger: ctx.logger,
        }).catch(async (error: unknown) => {
          await runtime.close();
          throw error instanceof PortInUseError ? new UsageError(error.message) : error;
        });
        ctx.logger.info(`dashboard ${listen.describe}`);
        const signal = await shutdown;
        ctx.logger.info(`${signal}: dashboard stopping`);
        await server.close();
        await runtime.close();
      } finally {
        await ctx.close();
      }
    });
}
