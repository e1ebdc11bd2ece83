import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { createDashboardApp } from './app.ts';
import type { DashboardDeps } from './dashboard-env.ts';

/** The port is taken by another process. */
export class PortInUseError extends Error {
  override readonly name = 'PortInUseError';
  constructor(
    readonly port: number,
    readonly host: string,
    cause: unknown,
  ) {
    super(`port ${port} on ${host} is in use: choose another with --port or DASHBOARD_PORT`, { cause });
  }
}

export interface DashboardServer {
  /** 'dashboard': a DashboardServer is an ExtraService of `aggjobs start`. */
  readonly name: 'dashboard';
  /** Where it listens, e.g. http://127.0.0.1:5555 (no credentials in it). */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves the dashboard on `port` (0: a free one) and `host` (default 0.0.0.0, like Flower).
 * Resolves once it listens; `close()` stops taking connections and ends open ones.
 */
export async function startDashboard(
  options: DashboardDeps & { port: number; host?: string },
): Promise<DashboardServer> {
  const { port, host = '0.0.0.0', ...deps } = options;
  const app = createDashboardApp(deps);
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port, hostname: host }, () => resolve(s));
    s.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new PortInUseError(port, host, error) : error),
    );
  });
  const address = server.address() as AddressInfo;
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const url = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${address.port}`;
  deps.logger.info({ address: url }, `dashboard listening on ${url}`);
  return {
    name: 'dashboard',
    url,
    close: () =>
      new Promise<void>((resolve) => {
        const s = server as ServerType & { closeAllConnections?: () => void };
        server.close(() => resolve());
        s.closeAllConnections?.();
      }),
  };
}
