import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, MiddlewareHandler } from 'hono';
import { basicAuth } from 'hono/basic-auth';
import { bearerAuth } from 'hono/bearer-auth';
import { HTTPException } from 'hono/http-exception';
import type { DashboardEnv } from '../dashboard-env.ts';
import { authEnabled, checkPassword, checkToken, type Credentials } from './credentials.ts';
import type { LoginBrake } from './login-brake.ts';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const CHALLENGE = 'Basic realm="aggjobs dashboard", charset="UTF-8"';

/** The answer to every failed login, basic or bearer: 401, JSON, with the basic-auth challenge. */
function unauthorized(): Response {
  return new Response(JSON.stringify({ error: 'authentication required' }), {
    status: 401,
    headers: { 'content-type': 'application/json', 'WWW-Authenticate': CHALLENGE },
  });
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
 * behind it, through Hono's basic-auth and bearer-auth middleware (header parsing, the challenge);
 * the credentials are checked by ours (credentials.ts: constant-time, roles). Without any
 * credentials configured (development) everyone is admin. A read-only user may only read: any
 * other method gets 403. Wrong credentials are counted per client address by `brake`: an address
 * it has locked out gets 429 with Retry-After, its credentials unchecked.
 */
export function authMiddleware(credentials: Credentials, brake: LoginBrake): MiddlewareHandler<DashboardEnv> {
  const enabled = authEnabled(credentials);
  const basic = basicAuth({
    verifyUser: (user, password, c: Context) => {
      const role = checkPassword(credentials, user, password);
      if (role !== undefined) (c as Context<DashboardEnv>).set('auth', { role, via: 'basic', user });
      return role !== undefined;
    },
  });
  const bearer = bearerAuth({
    verifyToken: (token, c: Context) => {
      const role = checkToken(credentials, token);
      if (role !== undefined)
        (c as Context<DashboardEnv>).set('auth', { role, via: 'bearer', user: undefined });
      return role !== undefined;
    },
  });
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
    const check: MiddlewareHandler = header.split(' ')[0]?.toLowerCase() === 'bearer' ? bearer : basic;
    try {
      // The rest of the app runs below, once the role is known: Hono's middleware only checks.
      await check(c, () => Promise.resolve());
    } catch (error: unknown) {
      if (!(error instanceof HTTPException)) throw error;
      if (header !== '') brake.failed(address);
      // Every refusal the same way (Hono's: a text body, its own realm, 400 for a malformed bearer
      // header): JSON, our challenge, 401.
      return unauthorized();
    }
    brake.succeeded(address);
    if (c.get('auth').role === 'readonly' && !SAFE_METHODS.has(c.req.method)) {
      return c.json({ error: 'this user is read-only: it may not change anything' }, 403);
    }
    return await next();
  };
}
