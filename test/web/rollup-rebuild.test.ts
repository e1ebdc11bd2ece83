import { beforeAll, describe, expect, it } from 'vitest';
import { builtinRollups, refreshRollup, type RollupDefinition } from '../../src/rollups/index.ts';
import { webHarness, type WebHarness } from './web-harness.ts';

/** The dashboard shows a rollup whose rows were built in another zone as needing a rebuild. */
let h: WebHarness;
beforeAll(async () => {
  h = await webHarness('postgres', { env: { ANALYTICS_TIMEZONE: 'Asia/Kathmandu' } });
});

describe('a rollup built in another ANALYTICS_TIMEZONE', () => {
  it('is marked "needs rebuild" with the command on the rollups page, in /api/rollups and /api/health', async () => {
    const daily = builtinRollups.find((d) => d.name === 'execution_metrics_daily') as RollupDefinition;
    await refreshRollup(h.db.pool, daily, { timezone: 'America/New_York', mode: { kind: 'incremental' } });

    const page = await (await h.app.request('/rollups')).text();
    expect(page).toContain('needs rebuild');
    expect(page).toContain('aggjobs rollups rebuild --rollup execution_metrics_daily');
    expect(page).toContain('ANALYTICS_TIMEZONE changed from America/New_York to Asia/Kathmandu');
    expect(page).not.toContain('aggjobs rollups rebuild --rollup execution_metrics_hourly');

    const api = (await (await h.app.request('/api/rollups')).json()) as {
      rollups: Array<{
        table: string;
        rebuild: { command: string; changes: Array<{ what: string }> } | null;
      }>;
    };
    const status = api.rollups.find((r) => r.table === 'execution_metrics_daily');
    expect(status?.rebuild?.command).toBe('aggjobs rollups rebuild --rollup execution_metrics_daily');
    expect(status?.rebuild?.changes.map((c) => c.what)).toEqual(['timezone']);
    expect(api.rollups.find((r) => r.table === 'execution_metrics_hourly')?.rebuild).toBeNull();

    const health = await h.app.request('/api/health?fresh=1');
    const report = (await health.json()) as { checks: Record<string, { status: string; detail: string }> };
    expect(report.checks.rollup_identity?.status).toBe('unhealthy');
    expect(report.checks.rollup_identity?.detail).toContain(
      'run aggjobs rollups rebuild --rollup execution_metrics_daily',
    );
    expect(health.status).toBe(503);
  });
});
