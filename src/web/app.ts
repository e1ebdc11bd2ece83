import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { secureHeaders } from 'hono/secure-headers';
import { settingsScrubber } from '../config/index.ts';
import type { Pool } from '../db/index.ts';
import { materializedViewNames, builtinRollups } from '../rollups/index.ts';
import { createControl, type Runtime } from '../runtime/index.ts';
import { InvalidTaskArgsError, UnknownTaskError } from '../tasks/index.ts';
import { apiRoutes, boundedParam, checkRequestBounds, HttpError } from './api/index.ts';
import { clientScript, favicon, stylesheet } from './assets/index.ts';
import {
  assertCredentialsForEnv,
  authEnabled,
  authMiddleware,
  createLoginBrake,
  credentialsFrom,
  csrfMiddleware,
} from './auth/index.ts';
import { bullBoardRoutes, BULL_BOARD_PATH } from './bull-board/index.ts';
import type { DashboardContext } from './dashboard-context.ts';
import type { DashboardDeps, DashboardEnv } from './dashboard-env.ts';
import { html, type SafeHtml } from './html/index.ts';
import { MAX_BODY_BYTES } from './limits/index.ts';
import { collectMetrics } from './metrics/index.ts';
import { readTimeoutReason, timedPool } from './queries/index.ts';
import {
  backfillPage,
  chartsPage,
  configPage,
  layout,
  navBar,
  overviewPage,
  pageHead,
  rollupsPage,
  schedulesPage,
  taskPage,
  tasksPage,
  workersPage,
  type PageRequest,
  type PageResult,
} from './pages/index.ts';
import { createHealthService } from './services/index.ts';

type PageRender = (ctx: DashboardContext, req: PageRequest, c: Context<DashboardEnv>) => Promise<PageResult>;

/**
 * The headers every answer carries (hono/secure-headers), and the content security policy of our
 * own pages. Bull Board's page brings its own scripts and styles: it gets the headers, not the
 * policy. No Strict-Transport-Security: TLS is the proxy's business, and a policy sent from here
 * would bind every subdomain of whatever name the dashboard is reached by.
 */
const SECURE_HEADERS = {
  referrerPolicy: 'same-origin',
  xFrameOptions: 'DENY',
  strictTransportSecurity: false,
} as const;
const pageHeaders = secureHeaders({
  ...SECURE_HEADERS,
  contentSecurityPolicy: {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'", "'unsafe-inline'"],
    imgSrc: ["'self'", 'data:'],
    connectSrc: ["'self'"],
    frameAncestors: ["'none'"],
    formAction: ["'self'"],
    baseUri: ["'self'"],
  },
});
const bullBoardHeaders = secureHeaders(SECURE_HEADERS);

/** The longest message, field or rule an error answer quotes: a refused value is not echoed whole. */
const MAX_ERROR_TEXT = 300;
const MAX_PROBLEMS = 20;

function clip(text: string): string {
  return text.length <= MAX_ERROR_TEXT
    ? text
    : `${text.slice(0, MAX_ERROR_TEXT)}… (${text.length} characters)`;
}

function clipErrorBody(body: { error: string; problems?: ReadonlyArray<{ field: string; rule: string }> }) {
  return body.problems === undefined
    ? { error: clip(body.error) }
    : {
        error: clip(body.error),
        problems: body.problems
          .slice(0, MAX_PROBLEMS)
          .map((p) => ({ field: clip(p.field), rule: clip(p.rule) })),
      };
}

/**
 * The runtime as the dashboard's Control sees it: its pool is the timed one, so the control queries
 * (queues, workers, schedules, a run and its children) give up like every other dashboard query
 * instead of waiting on a lock (issue 15). Enqueueing keeps the runtime's own pool.
 */
function withTimedPool(runtime: Runtime, pool: Pool): Runtime {
  return new Proxy(runtime, {
    get: (target, prop, receiver) => (prop === 'pool' ? pool : Reflect.get(target, prop, receiver)),
  });
}

function buildContext(deps: DashboardDeps): DashboardContext {
  const { settings, runtime } = deps;
  // One timed wrapper per pool (they are usually the same pool).
  const runtimePool = timedPool(runtime.pool);
  return {
    pool: deps.pool === runtime.pool ? runtimePool : timedPool(deps.pool),
    settings,
    runtime,
    control: deps.control ?? createControl(withTimedPool(runtime, runtimePool)),
    logger: deps.logger,
    scrub: settingsScrubber(settings, [runtime.databaseUrl]),
    health: createHealthService(runtime, runtimePool),
    rollups: builtinRollups,
    views: materializedViewNames,
    authEnabled: authEnabled(credentialsFrom(settings)),
  };
}

/**
 * The dashboard (Flower's role): server-rendered pages, the JSON API under /api, /metrics for
 * Prometheus, /healthz, and Bull Board under /queues. Everything but /healthz is behind auth;
 * state-changing requests from pages are CSRF-checked. Throws ConfigError in production without
 * credentials.
 */
export function createDashboardApp(deps: DashboardDeps): Hono<DashboardEnv> {
  assertCredentialsForEnv(deps.settings);
  const ctx = buildContext(deps);
  const credentials = credentialsFrom(deps.settings);
  const app = new Hono<DashboardEnv>();

  app.use('*', async (c, next) => {
    const started = performance.now();
    await (c.req.path.startsWith(BULL_BOARD_PATH) ? bullBoardHeaders : pageHeaders)(c, next);
    ctx.logger.debug(
      {
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round(performance.now() - started),
      },
      'dashboard request',
    );
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  // The icon is public (a browser asks for it before and without credentials): no 404 in the console.
  const icon = (c: Context<DashboardEnv>) => {
    c.header('Cache-Control', 'public, max-age=86400');
    return c.body(favicon, 200, { 'Content-Type': 'image/svg+xml' });
  };
  app.get('/favicon.svg', icon);
  app.get('/favicon.ico', icon);
  // Before auth and CSRF (which parses form bodies): an oversized body is refused unread when it
  // declares its length, and after MAX_BODY_BYTES when it does not.
  app.use(
    '*',
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) =>
        c.json(
          {
            error: `the body is larger than the limit of ${MAX_BODY_BYTES} bytes (${MAX_BODY_BYTES / 1024} KiB)`,
            problems: [{ field: '(body)', rule: `at most ${MAX_BODY_BYTES} bytes` }],
          },
          413,
        ),
    }),
  );
  app.use('*', authMiddleware(credentials, createLoginBrake(ctx.logger, deps.clock)));
  app.use('*', csrfMiddleware({ exemptPrefixes: [BULL_BOARD_PATH] }));
  // Every path and query value is bounded (limits/input-limits.ts) and, since PostgreSQL stores no
  // U+0000 in text, refused when it holds one, at the edge
  // (task arguments are checked where they are validated, in parseTaskArgs).
  app.use('*', async (c, next) => {
    let path: string;
    try {
      path = decodeURIComponent(c.req.path);
    } catch {
      throw new HttpError(400, 'the path is not valid percent-encoding', [
        { field: 'path', rule: 'valid percent-encoding' },
      ]);
    }
    checkRequestBounds(path, c.req.queries());
    const bad = path.includes('\u0000')
      ? 'path'
      : Object.entries(c.req.queries()).find(
          ([k, vs]) => k.includes('\u0000') || vs.some((v) => v.includes('\u0000')),
        )?.[0];
    if (bad !== undefined) {
      throw new HttpError(400, `${bad} must not contain the NUL character (U+0000)`, [
        { field: bad, rule: 'must not contain the NUL character (U+0000)' },
      ]);
    }
    await next();
  });

  app.get('/assets/style.css', (c) => {
    c.header('Cache-Control', 'public, max-age=300');
    return c.body(stylesheet, 200, { 'Content-Type': 'text/css; charset=utf-8' });
  });
  app.get('/assets/app.js', (c) => {
    c.header('Cache-Control', 'public, max-age=300');
    return c.body(clientScript, 200, { 'Content-Type': 'text/javascript; charset=utf-8' });
  });

  app.get('/metrics', async (c) =>
    c.body(await collectMetrics(ctx), 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }),
  );
  app.route('/api', apiRoutes(ctx));

  const notice: SafeHtml | undefined = ctx.authEnabled
    ? undefined
    : html`<div class="notice">
        No authentication is configured (DASHBOARD_USER and DASHBOARD_PASSWORD are unset): anyone who can
        reach this port can operate the runtime. Set them before exposing the dashboard.
      </div>`;
  const page = (render: PageRender) => async (c: Context<DashboardEnv>) => {
    const auth = c.get('auth');
    const req: PageRequest = { query: c.req.query(), canWrite: auth.role === 'admin' };
    const result = await render(ctx, req, c);
    c.header('Cache-Control', 'no-store');
    if (c.req.header('x-fragment') === '1') return c.html(result.live.value);
    const url = new URL(c.req.url);
    return c.html(
      layout({
        title: result.title,
        path: c.req.path,
        liveUrl: `${url.pathname}${url.search}`,
        csrfToken: c.get('csrfToken'),
        user: auth.user,
        readOnly: auth.role === 'readonly',
        notice,
        controls: result.controls,
        live: result.live,
      }).value,
    );
  };
  app.get('/', page(overviewPage));
  app.get('/tasks', page(tasksPage));
  app.get(
    '/tasks/:id',
    page((ctx, req, c) => taskPage(ctx, req, boundedParam('id', c.req.param('id')))),
  );
  app.get('/workers', page(workersPage));
  app.get('/schedules', page(schedulesPage));
  app.get('/rollups', page(rollupsPage));
  app.get('/backfill', page(backfillPage));
  app.get('/charts', page(chartsPage));
  app.get('/config', page(configPage));
  app.route(BULL_BOARD_PATH, bullBoardRoutes(ctx));

  const wantsJson = (c: Context<DashboardEnv>): boolean =>
    c.req.path.startsWith('/api/') ||
    c.req.path === '/metrics' ||
    c.req.method !== 'GET' ||
    c.req.header('x-fragment') === '1';
  // With the navigation bar: from an error, every page is one click away.
  const errorPage = (c: Context<DashboardEnv>, status: 400 | 404 | 409 | 500 | 503, message: string) =>
    c.html(
      html`<!doctype html>
        <html lang="en">
          ${pageHead(String(status))}
          <body>
            ${navBar(c.req.path, '')}
            <main>
              <h1>${String(status)}</h1>
              <section class="card">
                <p>${message}</p>
                <p><a href="/">Back to the overview</a></p>
              </section>
            </main>
          </body>
        </html>`.value,
      status,
    );

  app.notFound((c) =>
    wantsJson(c)
      ? c.json({ error: `no route ${c.req.method} ${c.req.path}` }, 404)
      : errorPage(c, 404, `No page at ${c.req.path}.`),
  );
  app.onError((error, c) => {
    let status: 400 | 404 | 409 | 500 | 503 = 500;
    let body: { error: string; problems?: ReadonlyArray<{ field: string; rule: string }> };
    if (error instanceof HttpError) {
      status = error.status === 400 || error.status === 404 || error.status === 409 ? error.status : 500;
      body =
        error.problems.length > 0
          ? { error: error.message, problems: error.problems }
          : { error: error.message };
    } else if (error instanceof InvalidTaskArgsError) {
      status = 400;
      body = {
        error: error.message,
        problems: error.problems.map((p) => ({ field: p.field, rule: p.message })),
      };
    } else if (error instanceof UnknownTaskError) {
      status = 404;
      body = { error: error.message };
    } else if (readTimeoutReason(error) !== undefined) {
      // A dashboard query gave up (queries/timed-pool.ts): the database is busy, not broken.
      status = 503;
      body = { error: `could not read what this needs: ${readTimeoutReason(error)}; try again` };
    } else {
      // The logger hides the secrets of the error's message and stack (createLogger).
      ctx.logger.error({ err: error, path: c.req.path }, 'dashboard error');
      body = { error: `internal error: ${error.message}` };
    }
    body = ctx.scrub.value(clipErrorBody(body));
    return wantsJson(c) ? c.json(body, status) : errorPage(c, status, body.error);
  });
  return app;
}
