import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, settingsScrubber } from '../../src/config/index.ts';
import { createLogger, type LogLine } from '../../src/log/index.ts';
import type { Control } from '../../src/runtime/index.ts';
import { createDashboardApp } from '../../src/web/index.ts';
import { basic, webHarness, webSettings, type WebHarness } from './web-harness.ts';

/** Auth (basic, bearer, read-only), CSRF, escaping of task data, and no secret in any answer. */
const DB_SECRET = 'sup3rDbSecretPw';
const REDIS_SECRET = 'r3disSecretPw';
let h: WebHarness;
const admin = basic('ops', 'correct horse');
const viewer = basic('viewer', 'just looking');
const TOKEN = 'tok_0123456789abcdef';
const EVIL = '<script>alert("pwned")</script>';

async function insertRun(
  id: string,
  state: string,
  fields: { args?: unknown; result?: unknown; error?: string },
) {
  await h.db.pool.query(
    `INSERT INTO aggjobs.task_runs (id, task, args, state, queue, worker, attempts, started_at, finished_at, duration_ms, result, error)
     VALUES ($1, 'web_flaky', $2, $3, 'maintenance', 'w@host', 1, now() - interval '2 s', now(), 2000, $4, $5)`,
    [
      id,
      JSON.stringify(fields.args ?? {}),
      state,
      fields.result === undefined ? null : JSON.stringify(fields.result),
      fields.error ?? null,
    ],
  );
}

beforeAll(async () => {
  h = await webHarness('postgres', {
    env: {
      DASHBOARD_USER: 'ops',
      DASHBOARD_PASSWORD: 'correct horse',
      // Only scrubbed, never used to connect (the harness passes its own pool and broker).
      DATABASE_URL: `postgres://app:${DB_SECRET}@db.internal:5432/product`,
    },
    dashboardOnly: { resultBackendUrl: `redis://:${REDIS_SECRET}@cache.internal:6379/1` },
    auth: {
      dashboardToken: TOKEN,
      dashboardReadonlyUser: 'viewer',
      dashboardReadonlyPassword: 'just looking',
    },
  });
  await insertRun('evil-1', 'failed', {
    args: { key: EVIL, note: `postgres://app:${DB_SECRET}@db.internal/x` },
    result: { html: '<img src=x onerror=alert(1)>' },
    error: `boom ${EVIL} while connecting with password ${DB_SECRET} and redis ${REDIS_SECRET}`,
  });
});

describe('authentication', () => {
  it('requires credentials everywhere but /healthz', async () => {
    expect((await h.app.request('/healthz')).status).toBe(200);
    for (const path of [
      '/',
      '/tasks',
      '/api/tasks',
      '/api/health',
      '/metrics',
      '/queues',
      '/assets/app.js',
    ]) {
      const res = await h.app.request(path);
      expect(res.status, path).toBe(401);
      expect(res.headers.get('www-authenticate'), path).toContain('Basic');
    }
    expect(
      (await h.app.request('/api/tasks', { headers: { authorization: basic('ops', 'wrong') } })).status,
    ).toBe(401);
    expect(
      (await h.app.request('/api/tasks', { headers: { authorization: basic('opsx', 'correct horse') } }))
        .status,
    ).toBe(401);
    expect((await h.app.request('/api/tasks', { headers: { authorization: 'Basic !!!' } })).status).toBe(401);
    expect((await h.app.request('/api/tasks', { headers: { authorization: admin } })).status).toBe(200);
  });

  it('accepts the bearer token for scripts', async () => {
    expect(
      (await h.app.request('/api/tasks', { headers: { authorization: `Bearer ${TOKEN}` } })).status,
    ).toBe(200);
    expect((await h.app.request('/api/tasks', { headers: { authorization: 'Bearer nope' } })).status).toBe(
      401,
    );
    const res = await h.app.request('/api/tasks/web_sleep/apply', {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ kwargs: { seconds: 0 } }),
    });
    expect(res.status).toBe(202);
  });

  it('answers a malformed header or token 401 with the basic challenge (Hono parses, we check)', async () => {
    for (const header of [
      'Basic',
      'Basic bm9jb2xvbg==', // "nocolon"
      'Bearer',
      'Bearer two words',
      'Bearer ünïcode',
      'Digest abc',
      basic('ops', 'correct horse!'),
    ]) {
      const res = await h.app.request('/api/tasks', { headers: { authorization: header } });
      expect(res.status, header).toBe(401);
      expect(res.headers.get('www-authenticate'), header).toBe(
        'Basic realm="aggjobs dashboard", charset="UTF-8"',
      );
      expect(await res.json(), header).toEqual({ error: 'authentication required' });
    }
    // A password with a colon and a UTF-8 user name are read whole.
    const odd = createDashboardApp({
      ...h.deps,
      settings: { ...h.deps.settings, dashboardUser: 'opé', dashboardPassword: 'a:b:c' },
    });
    expect(
      (await odd.request('/api/tasks', { headers: { authorization: basic('opé', 'a:b:c') } })).status,
    ).toBe(200);
  });

  it('lets the read-only user read, and nothing else', async () => {
    expect((await h.app.request('/api/tasks', { headers: { authorization: viewer } })).status).toBe(200);
    const page = await (await h.app.request('/tasks/evil-1', { headers: { authorization: viewer } })).text();
    expect(page).not.toContain('data-action');
    expect(page).toContain('(read-only)');
    const res = await h.app.request('/api/tasks/evil-1/retry', {
      method: 'POST',
      headers: { authorization: viewer },
    });
    expect(res.status).toBe(403);
    const bb = await h.app.request('/queues/api/queues/maintenance/pause', {
      method: 'PUT',
      headers: { authorization: viewer },
    });
    expect(bb.status).toBe(403);
  });

  it('refuses to start in production without credentials', () => {
    const deps = { pool: h.db.pool, runtime: h.runtime, logger: createLogger('silent') };
    expect(() =>
      createDashboardApp({ ...deps, settings: webSettings('postgres', { APP_ENV: 'production' }) }),
    ).toThrow(ConfigError);
    expect(() =>
      createDashboardApp({
        ...deps,
        settings: webSettings('postgres', {
          APP_ENV: 'production',
          DASHBOARD_USER: 'a',
          DASHBOARD_PASSWORD: 'b',
        }),
      }),
    ).not.toThrow();
  });
});

describe('CSRF', () => {
  const cookieOf = async (): Promise<{ cookie: string; token: string }> => {
    const res = await h.app.request('/', { headers: { authorization: admin } });
    const setCookie = res.headers.get('set-cookie') ?? '';
    const cookie = setCookie.split(';')[0] ?? '';
    const html = await res.text();
    const token = /<meta name="csrf-token" content="([0-9a-f]{64})"\s*\/?>/.exec(html)?.[1] ?? '';
    expect(token, html.slice(0, 300)).toMatch(/^[0-9a-f]{64}$/);
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Strict/i);
    expect(cookie.endsWith(token)).toBe(true);
    return { cookie, token };
  };
  const post = (headers: Record<string, string>) =>
    h.app.request('/api/tasks/web_sleep/apply', {
      method: 'POST',
      headers: { authorization: admin, 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ kwargs: { seconds: 0 } }),
    });

  it('refuses cross-origin requests', async () => {
    const { cookie, token } = await cookieOf();
    expect((await post({ origin: 'https://evil.example', cookie, 'x-csrf-token': token })).status).toBe(403);
    expect((await post({ 'sec-fetch-site': 'cross-site', cookie, 'x-csrf-token': token })).status).toBe(403);
    // Bull Board's API (no token of ours) is held to the Origin check too.
    const bb = await h.app.request('/queues/api/queues/maintenance/pause', {
      method: 'PUT',
      headers: { authorization: admin, origin: 'https://evil.example' },
    });
    expect(bb.status).toBe(403);
  });

  it('requires the token from a browser, and accepts it', async () => {
    const { cookie, token } = await cookieOf();
    expect((await post({ origin: 'http://localhost', cookie })).status).toBe(403);
    expect((await post({ origin: 'http://localhost', cookie, 'x-csrf-token': 'f'.repeat(64) })).status).toBe(
      403,
    );
    const ok = await post({
      origin: 'http://localhost',
      'sec-fetch-site': 'same-origin',
      cookie,
      'x-csrf-token': token,
    });
    expect(ok.status, await ok.clone().text()).toBe(202);
  });

  it('lets scripts without a browser context through (curl with basic auth)', async () => {
    expect((await post({})).status).toBe(202);
  });
});

describe('task data is escaped and secrets never leave', () => {
  it('escapes args, result and error on every page that shows them', async () => {
    for (const path of ['/tasks/evil-1', '/tasks', '/', '/tasks?q=boom']) {
      const res = await h.app.request(path, { headers: { authorization: admin } });
      expect(res.status, path).toBe(200);
      const html = await res.text();
      expect(html, path).not.toContain('<script>alert');
      expect(html, path).not.toContain('<img src=x');
      expect(html, path).toContain('&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;');
      expect(res.headers.get('content-security-policy'), path).toContain("script-src 'self'");
    }
  });

  it('shows no database, Redis or dashboard secret in pages, API answers or metrics', async () => {
    const paths = [
      '/',
      '/tasks',
      '/tasks/evil-1',
      '/workers',
      '/schedules',
      '/rollups',
      '/backfill',
      '/charts',
      '/api/tasks',
      '/api/tasks/evil-1',
      '/api/health',
      '/api/workers',
      '/api/queues',
      '/api/schedules',
      '/api/rollups',
      '/metrics',
    ];
    for (const path of paths) {
      const res = await h.app.request(path, { headers: { authorization: admin } });
      expect(res.status, path).toBeLessThan(500);
      const text = await res.text();
      for (const secret of [DB_SECRET, REDIS_SECRET, 'correct horse', 'just looking', TOKEN]) {
        expect(text, `${path} shows ${secret}`).not.toContain(secret);
      }
    }
    const run = (await (
      await h.app.request('/api/tasks/evil-1', { headers: { authorization: admin } })
    ).json()) as {
      run: { error: string; args: { note: string } };
    };
    expect(run.run.error).toContain('***');
    expect(run.run.args.note).toBe('postgres://app:***@db.internal/x');
  });
  it('an internal error hides its passwords in the answer and in the log line', async () => {
    const settings = webSettings('postgres', {
      DATABASE_URL: `postgres://app:${DB_SECRET}@db.internal:5432/product`,
      REDIS_URL: `redis+sentinel://:${REDIS_SECRET}@s1:26379/m?sentinel_password=sentinel-pw-9`,
    });
    const cause = `could not connect to postgres://user:sec@retPW@[bad/db with ${DB_SECRET}, then ${settings.brokerUrl ?? ''}`;
    const lines: LogLine[] = [];
    const app = createDashboardApp({
      pool: h.db.pool,
      runtime: h.runtime,
      settings,
      logger: createLogger('silent', {
        onLine: (line) => lines.push(line),
        scrub: settingsScrubber(settings),
      }),
      control: new Proxy({} as Control, {
        get: () => () => Promise.reject(new Error(cause)),
      }),
    });
    const res = await app.request('/api/schedules');
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({
      error:
        'internal error: could not connect to postgres://user:***@[bad/db with ***, then redis+sentinel://:***@s1:26379/m?sentinel_password=***',
    });
    expect(lines).toHaveLength(1);
    const err = lines[0]?.data?.err as { message: string; stack: string };
    expect(err.message).toBe(
      'could not connect to postgres://user:***@[bad/db with ***, then redis+sentinel://:***@s1:26379/m?sentinel_password=***',
    );
    expect(err.stack).toContain(err.message);
    for (const secret of [DB_SECRET, REDIS_SECRET, 'sentinel-pw-9', 'sec@', 'retPW']) {
      expect(JSON.stringify(lines), secret).not.toContain(secret);
    }
  });
});
