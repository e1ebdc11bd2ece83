import { randomBytes } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import type { DashboardEnv } from '../dashboard-env.ts';
import { safeEqual } from './credentials.ts';

export const CSRF_COOKIE = 'aggjobs_csrf';
export const CSRF_HEADER = 'x-csrf-token';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * A browser attaches cached basic-auth credentials to any request to this host, so a state-changing
 * request from a page must prove it came from one of ours:
 * - its Origin (sent by browsers on every POST) must be this host, and Sec-Fetch-Site, when present,
 *   same-origin;
 * - a request that comes from a browser (it carries Origin, Sec-Fetch-Site or a cookie) must also
 *   send the double-submit token: the `aggjobs_csrf` cookie (HttpOnly, SameSite=Strict) repeated in
 *   the `x-csrf-token` header or the `_csrf` form field. Our pages read it from a <meta> tag.
 * Scripts (curl with basic auth, a bearer token) send neither, and pass. Bull Board's UI (under
 * `/queues`) cannot send our token: it is held to the Origin check.
 */
export function csrfMiddleware(options: {
  exemptPrefixes: readonly string[];
}): MiddlewareHandler<DashboardEnv> {
  return async (c, next) => {
    let token = getCookie(c, CSRF_COOKIE);
    if (token === undefined || !/^[0-9a-f]{64}$/.test(token)) {
      token = randomBytes(32).toString('hex');
      setCookie(c, CSRF_COOKIE, token, { httpOnly: true, sameSite: 'Strict', path: '/' });
    }
    c.set('csrfToken', token);
    if (SAFE_METHODS.has(c.req.method) || c.get('auth').via === 'bearer') return await next();

    const origin = c.req.header('origin');
    const fetchSite = c.req.header('sec-fetch-site');
    const host = new URL(c.req.url).host;
    let originHost: string | undefined;
    try {
      originHost = origin === undefined || origin === 'null' ? undefined : new URL(origin).host;
    } catch {
      originHost = undefined;
    }
    if (
      (origin !== undefined && originHost !== host) ||
      (fetchSite !== undefined && !['same-origin', 'none'].includes(fetchSite))
    ) {
      return c.json({ error: 'cross-origin request refused (CSRF protection)' }, 403);
    }
    const path = c.req.path;
    if (options.exemptPrefixes.some((p) => path === p || path.startsWith(`${p}/`))) return await next();
    const fromBrowser =
      origin !== undefined || fetchSite !== undefined || c.req.header('cookie') !== undefined;
    if (!fromBrowser) return await next();
    let sent = c.req.header(CSRF_HEADER);
    if (
      sent === undefined &&
      (c.req.header('content-type') ?? '').includes('application/x-www-form-urlencoded')
    ) {
      const form = await c.req.parseBody();
      sent = typeof form._csrf === 'string' ? form._csrf : undefined;
    }
    const cookie = getCookie(c, CSRF_COOKIE);
    if (sent === undefined || cookie === undefined || !safeEqual(sent, cookie)) {
      return c.json({ error: 'missing or wrong CSRF token: reload the page and try again' }, 403);
    }
    return await next();
  };
}
