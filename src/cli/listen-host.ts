import type { Settings } from '../config/index.ts';

/**
 * Where a command that serves HTTP listens: `--host` when given; else every interface when the
 * dashboard has credentials, and loopback only when it has none (an open dashboard is never put
 * on the network by default). `describe` is the startup line's words for it.
 */
export function listenHost(
  settings: Pick<Settings, 'dashboardUser'>,
  flag: string | undefined,
): { host: string; describe: string } {
  const open = settings.dashboardUser === undefined;
  if (flag !== undefined) {
    return {
      host: flag,
      describe: `listening on ${flag} (--host)${open ? ', no authentication (DASHBOARD_USER/DASHBOARD_PASSWORD unset)' : ''}`,
    };
  }
  return open
    ? {
        host: '127.0.0.1',
        describe:
          'listening on 127.0.0.1 only: no DASHBOARD_USER/DASHBOARD_PASSWORD, so no authentication (--host 0.0.0.0 to serve the network)',
      }
    : {
        host: '0.0.0.0',
        describe: 'listening on every interface (0.0.0.0), behind DASHBOARD_USER/DASHBOARD_PASSWORD',
      };
}
