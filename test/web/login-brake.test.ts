import { beforeAll, describe, expect, it } from 'vitest';
import { createLogger, type LogLine } from '../../src/log/index.ts';
import { LOGIN_BRAKE } from '../../src/web/auth/index.ts';
import { createDashboardApp } from '../../src/web/index.ts';
import { basic, webHarness, type WebHarness } from './web-harness.ts';

/** Issue 15: 300 wrong passwords took 3.7 s, all 401. Counted, not timed: the clock is the test's. */
let h: WebHarness;
let app: ReturnType<typeof createDashboardApp>;
let clock = 1_000_000;
const lines: LogLine[] = [];
const right = basic('ops', 'correct horse');
const wrong = (i: number) => basic('ops', `guess ${i}`);
/** An in-process request from a given client address (what @hono/node-server passes as env). */
const from = (address: string, authorization: string) =>
  app.request(
    '/api/health',
    { headers: { authorization } },
    { incoming: { socket: { remoteAddress: address } } },
  );
const brakeLines = (address: string) =>
  lines.filter((l) => l.level === 'warn' && l.msg.includes(`failed logins from ${address}`));

beforeAll(async () => {
  h = await webHarness('postgres', { env: { DASHBOARD_USER: 'ops', DASHBOARD_PASSWORD: 'correct horse' } });
  app = createDashboardApp({
    ...h.deps,
    logger: createLogger('silent', { onLine: (line) => lines.push(line) }),
    clock: () => clock,
  });
});

describe('brute-force brake', () => {
  it('300 wrong passwords from one address: 10 answered 401, then 429 with Retry-After', async () => {
    const statuses = new Map<number, number>();
    let retryAfter: string | null = null;
    for (let i = 0; i < 300; i += 1) {
      const res = await from('203.0.113.7', wrong(i));
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status === 429) retryAfter = res.headers.get('retry-after');
    }
    // The 11th failure is still checked (401) and sets the first lock; the clock stands still, so
    // the other 289 are refused unchecked.
    expect(Object.fromEntries(statuses)).toEqual({ 401: LOGIN_BRAKE.freeFailures + 1, 429: 289 });
    expect(retryAfter).toBe('1');
    expect(brakeLines('203.0.113.7')).toHaveLength(1);
    expect(brakeLines('203.0.113.7')[0]?.data).toMatchObject({ address: '203.0.113.7', failures: 11 });
  });

  it('while locked, even the right password waits (429); other addresses are not affected', async () => {
    expect((await from('203.0.113.7', right)).status).toBe(429);
    expect((await from('198.51.100.2', right)).status).toBe(200);
    expect((await from('198.51.100.3', wrong(1))).status).toBe(401);
  });

  it('each further failure doubles the lock, up to 15 minutes; logged once per address', async () => {
    const locks: number[] = [1];
    for (let i = 0; i < 12; i += 1) {
      clock += (locks.at(-1) ?? 0) * 1000; // exactly when the lock lifts
      expect((await from('203.0.113.7', wrong(i))).status).toBe(401);
      const res = await from('203.0.113.7', wrong(i));
      expect(res.status).toBe(429);
      locks.push(Number(res.headers.get('retry-after')));
    }
    expect(locks).toEqual([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]);
    expect(brakeLines('203.0.113.7')).toHaveLength(1);
  });

  it('after the lock lifts the right password works and clears the count', async () => {
    clock += 900_000;
    expect((await from('203.0.113.7', right)).status).toBe(200);
    for (let i = 0; i < LOGIN_BRAKE.freeFailures; i += 1) {
      expect((await from('203.0.113.7', wrong(i))).status).toBe(401);
    }
  });

  it('a quiet window forgets the failures, and the next attack is logged again', async () => {
    clock += LOGIN_BRAKE.windowMs + 1000;
    const statuses: number[] = [];
    for (let i = 0; i < 20; i += 1) statuses.push((await from('203.0.113.7', wrong(i))).status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(LOGIN_BRAKE.freeFailures + 1);
    expect(brakeLines('203.0.113.7')).toHaveLength(2);
  });

  it('requests without credentials (a browser before its login prompt) are not counted', async () => {
    for (let i = 0; i < 50; i += 1) {
      expect(
        (await app.request('/api/health', {}, { incoming: { socket: { remoteAddress: '192.0.2.9' } } }))
          .status,
      ).toBe(401);
    }
    expect((await from('192.0.2.9', right)).status).toBe(200);
  });
});
