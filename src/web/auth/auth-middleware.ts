import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, MiddlewareHandler } from 'hono';
import type { DashboardEnv } from '../dashboard-env.ts';
import { authEnabled, checkPassword, checkToken, type Credentials } from './credentials.ts';
import type { LoginBrake } from './login-brake.ts';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function parseBasic(header: string): { name: string; password: string } | undefined {
  const encoded = header.slice('basic '.length).trim();
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { name: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * The client's address as the socket sees it. X-Forwarded-For is not read: anyone can send it, and
 * a brake keyed on it is a brake the attacker picks. Behind a proxy every client shares the proxy's
 * address. Without a socket (requests made in-process) it is `unknown`.
 */
function clientAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Basic auth (DASHBOARD_USER/PASSWORD, and the read-only user) or a bearer token, for every route
 * behind it. Without any credentials configured (development) everyone is admin. A read-only user
 * may only read: any other method gets 403. Wrong credentials are counted per client address by
 * `brake`: an address it has locked out gets 429 with Retry-After, its credentials unchecked.
 */
export function authMiddleware(credentials: Credentials, brake: LoginBrake): MiddlewareHandler<DashboardEnv> {
  const enabled = authEnabled(credentials);
  return async (c, next) => {
    if (!enabled) {
      c.set('auth', { role: 'admin', via: 'none', user: undefined });
      return await next();
    }
    const header = c.req.header('authorization') ?? '';
    const address = clientAddress(c);
    if (header !== '') {
      const wait = brake.retryAfterSeconds(address);
      if (wait > 0) {
        c.header('Retry-After', String(wait));
        return c.json({ error: `too many failed logins from this address: try again in ${wait} s` }, 429);
      }
    }
    const scheme = header.split(' ')[0]?.toLowerCase();
    let auth: DashboardEnv['Variables']['auth'] | undefined;
    if (scheme === 'basic') {
      const pair = parseBasic(header);
      const role = pair === undefined ? undefined : checkPassword(credentials, pair.name, pair.password);
      if (role !== undefined && pair !== undefined) auth = { role, via: 'basic', user: pair.name };
    } else if (scheme === 'bearer') {
      const role = checkToken(credentials, header.slice('bearer '.length).trim());
      if (role !== undefined) auth = { role, via: 'bearer', user: undefined };
    }
    if (auth === undefined) {
      if (header !== '') brake.failed(address);
      c.header('WWW-Authenticate', 'Basic realm="aggjobs dashboard", charset="UTF-8"');
      return c.json({ error: 'authentication required' }, 401);
    }
    brake.succeeded(address);
    if (auth.role === 'readonly' && !SAFE_METHODS.has(c.req.method)) {
      return c.json({ error: 'this user is read-only: it may not change anything' }, 403);
    }
    c.set('auth', auth);
    return await next();
  };
}
