import { beforeAll, describe, expect, it } from 'vitest';
import { basic, webHarness, type WebHarness } from './web-harness.ts';

/** The headers of every answer, from hono/secure-headers (issue 15: use what Hono ships). */
let h: WebHarness;
const admin = basic('ops', 'pw');

beforeAll(async () => {
  h = await webHarness('postgres', { env: { DASHBOARD_USER: 'ops', DASHBOARD_PASSWORD: 'pw' } });
});

describe('secure headers', () => {
  it('on pages, API answers, errors, refusals and Bull Board', async () => {
    for (const [path, auth, status] of [
      ['/', admin, 200],
      ['/api/tasks', admin, 200],
      ['/api/no-such-route', admin, 404],
      ['/no-such-page', admin, 404],
      ['/api/tasks', undefined, 401],
      ['/queues', admin, 200],
      ['/healthz', undefined, 200],
    ] as const) {
      const res = await h.app.request(path, auth === undefined ? {} : { headers: { authorization: auth } });
      expect(res.status, path).toBe(status);
      const header = (name: string) => res.headers.get(name);
      expect(header('x-content-type-options'), path).toBe('nosniff');
      expect(header('x-frame-options'), path).toBe('DENY');
      expect(header('referrer-policy'), path).toBe('same-origin');
      expect(header('cross-origin-opener-policy'), path).toBe('same-origin');
      expect(header('cross-origin-resource-policy'), path).toBe('same-origin');
      expect(header('strict-transport-security'), path).toBeNull();
      if (path.startsWith('/queues')) expect(header('content-security-policy'), path).toBeNull();
      else expect(header('content-security-policy'), path).toContain("frame-ancestors 'none'");
    }
  });
});
