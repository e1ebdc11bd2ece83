import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tableLock } from '../support/table-lock.ts';
import { webHarness, type WebHarness } from './web-harness.ts';

/**
 * Issue 15: while a session held ACCESS EXCLUSIVE on a rollup table, /rollups hung over 60 s (and
 * /api/health did not answer). Every
 * dashboard query now has a lock timeout (1 s) and a statement timeout (5 s); a page shows what it
 * read and says what it could not. The per-test timeout (20 s) is the only clock here: a generous
 * bound (20x the lock timeout) so a slow machine does not fail it, far below the 60 s seen.
 */
let h: WebHarness;

const lock = tableLock(() => h.db.url);

beforeAll(async () => {
  h = await webHarness('postgres');
});

afterEach(lock.release);

describe('dashboard queries under a held lock', () => {
  it(
    '/rollups answers, with what it read and a message for what it could not',
    { timeout: 20_000 },
    async () => {
      await lock.hold('analytics.execution_metrics_hourly');
      const res = await h.app.request('/rollups');
      expect(res.status).toBe(200);
      const page = await res.text();
      expect(page).toContain('Could not read');
      expect(page).toContain('another session holds a lock');
      // What it could read is still there: the materialized views' table and the rollup list.
      expect(page).toContain('Materialized views');
    },
  );

  it('the overview answers too', { timeout: 20_000 }, async () => {
    await lock.hold('analytics.execution_metrics_hourly');
    const res = await h.app.request('/');
    expect(res.status).toBe(200);
    const page = await res.text();
    // The health checks run through the dashboard's pool: the one that reads the locked table
    // says it could not; the rest of the page is there.
    expect(page).toContain('check failed: canceling statement due to lock timeout');
    expect(page).toContain('Queues');
  });

  it(
    'the API answers 503 naming what it could not read, not after a minute',
    { timeout: 20_000 },
    async () => {
      await lock.hold('analytics.execution_metrics_hourly');
      const res = await h.app.request('/api/rollups/execution_metrics_hourly/series');
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: string }).error).toContain('another session holds a lock');
    },
  );

  it(
    '/api/health answers within the timeouts and says what it could not check',
    { timeout: 20_000 },
    async () => {
      await lock.hold('analytics.execution_metrics_hourly');
      const res = await h.app.request('/api/health?fresh=1');
      expect(res.status).toBe(503);
      const report = (await res.json()) as { checks: Record<string, { status: string; detail: string }> };
      expect(report.checks.anomalies).toEqual({
        status: 'unhealthy',
        detail: 'check failed: canceling statement due to lock timeout',
      });
      expect(report.checks.database?.status).toBe('healthy');
    },
  );

  it('without the lock, the same pages read everything', async () => {
    const page = await (await h.app.request('/rollups')).text();
    expect(page).not.toContain('Could not read');
    expect((await h.app.request('/api/rollups/execution_metrics_hourly/series')).status).toBe(200);
  });
});
