/// <reference lib="dom" />
import { mkdirSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinRollups } from '../../src/rollups/index.ts';
import { startDashboard, type DashboardServer } from '../../src/web/index.ts';
import { currentHour, seedDemoData } from '../../src/workload/index.ts';
import { findChromium } from '../support/find-chromium.ts';
import { eventually, webHarness, type WebHarness } from '../web/web-harness.ts';

/**
 * Issue 15's "use" items in a real headless Chromium: a 390 px phone, dark mode, a live refresh
 * while a field is being typed in, a delayed run's page, a chart per rollup table, local times,
 * column sorting, filter URLs, the favicon and error pages. Screenshots go to test-results/.
 */
const executablePath = findChromium();
const OUT = 'test-results';
const PAGES = ['/', '/tasks', '/workers', '/schedules', '/rollups', '/backfill', '/charts', '/config'];
let h: WebHarness;
let server: DashboardServer;
let browser: Browser;

async function newContext(options: Parameters<Browser['newContext']>[0] = {}): Promise<BrowserContext> {
  const context = await browser.newContext({
    viewport: { width: 1400, height: 1000 },
    httpCredentials: { username: 'ops', password: 'use-password' },
    ...options,
  });
  context.on('page', (p) => p.on('dialog', (d) => void d.accept()));
  return context;
}

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  h = await webHarness('postgres', { env: { DASHBOARD_USER: 'ops', DASHBOARD_PASSWORD: 'use-password' } });
  await seedDemoData(h.db.pool, {
    seed: 11,
    days: 2,
    executionsPerDay: 2000,
    workspaces: 10,
    users: 50,
    end: currentHour(),
  });
  await h.startWorker('use-worker');
  for (const task of ['hourly_rollup', 'daily_rollup', 'weekly_rollup', 'monthly_rollup']) {
    await (await h.runtime.enqueue(task, {})).get({ timeout: 30 });
  }
  server = await startDashboard({ ...h.deps, port: 0, host: '127.0.0.1' });
  browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-sync'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('dashboard use in a browser', () => {
  it('fits a 390 px phone on every page: the navigation wraps, nothing overflows', async () => {
    const context = await newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    const page = await context.newPage();
    for (const path of PAGES) {
      await page.goto(`${server.url}${path}`);
      const widths = await page.evaluate(() => ({
        page: document.documentElement.scrollWidth,
        nav: document.querySelector('nav.top')?.getBoundingClientRect().height ?? 0,
      }));
      expect(widths.page, `${path} is ${widths.page} px wide`).toBeLessThanOrEqual(390);
      // Eight links do not fit one 48 px row at 390 px: the bar wrapped onto more rows.
      expect(widths.nav).toBeGreaterThan(48);
    }
    await page.goto(`${server.url}/`);
    await page.screenshot({ path: `${OUT}/phone-overview.png`, fullPage: true });
    await page.goto(`${server.url}/tasks`);
    await page.screenshot({ path: `${OUT}/phone-tasks.png`, fullPage: true });
    await context.close();
  });

  it('follows the system dark mode', async () => {
    const dark = await newContext({ colorScheme: 'dark' });
    const page = await dark.newPage();
    await page.goto(`${server.url}/rollups`);
    const colors = await page.evaluate(() => ({
      body: getComputedStyle(document.body).backgroundColor,
      card: getComputedStyle(document.querySelector('.card') as Element).backgroundColor,
    }));
    expect(colors).toEqual({ body: 'rgb(13, 17, 23)', card: 'rgb(22, 27, 34)' });
    await page.screenshot({ path: `${OUT}/dark-rollups.png`, fullPage: true });
    await dark.close();

    const light = await newContext({ colorScheme: 'light' });
    const lightPage = await light.newPage();
    await lightPage.goto(`${server.url}/rollups`);
    expect(await lightPage.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe(
      'rgb(246, 247, 249)',
    );
    await light.close();
  });

  it('a live refresh while typing neither overwrites the box nor takes focus, and Set sends what was typed', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/workers`);
    const box = page.locator('#conc-use-worker');
    await box.click();
    await box.fill('7');
    // The worker's heartbeat changes the page every second: a refresh comes and is held back.
    await page.evaluate(() => document.getElementById('live')?.removeAttribute('data-held'));
    await page.waitForFunction(() => document.getElementById('live')?.hasAttribute('data-held'), undefined, {
      timeout: 20_000,
    });
    expect(await box.inputValue()).toBe('7');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('conc-use-worker');
    await page.screenshot({ path: `${OUT}/workers-typing.png` });

    await page.locator('tr', { has: box }).getByRole('button', { name: 'Set' }).click();
    await page.locator('#flash', { hasText: 'Concurrency sent.' }).waitFor();
    // The worker took the typed value, and the page shows it once its heartbeat says so.
    await eventually(async () => {
      const { rows } = await h.db.pool.query<{ concurrency: number }>(
        "SELECT concurrency FROM aggjobs.workers WHERE name = 'use-worker'",
      );
      return rows[0]?.concurrency === 7;
    });
    await page.waitForFunction(
      () => (document.getElementById('conc-use-worker') as HTMLInputElement | null)?.defaultValue === '7',
      undefined,
      { timeout: 20_000 },
    );
    await context.close();
  });

  it("Flower's controls from the page: autoscale a worker, set and remove a queue's rate limit", async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/workers`);
    await page.locator('#more-use-worker summary').click();
    await page.fill('#as-min-use-worker', '2');
    await page.fill('#as-max-use-worker', '4');
    await page.screenshot({ path: `${OUT}/workers-controls.png`, fullPage: true });
    await page.getByRole('button', { name: 'Autoscale' }).click();
    await page.locator('#flash', { hasText: 'Autoscale sent.' }).waitFor();
    await eventually(async () => {
      const { rows } = await h.db.pool.query<{ concurrency: number }>(
        "SELECT concurrency FROM aggjobs.workers WHERE name = 'use-worker'",
      );
      return rows[0]?.concurrency === 2;
    });
    // The page shows the new concurrency (its live part was replaced), and the expanded controls
    // stayed expanded.
    await page
      .locator('#live tr', { hasText: 'use-worker' })
      .locator('td')
      .nth(5)
      .filter({ hasText: /^2$/ })
      .waitFor();
    expect(await page.locator('#more-use-worker').getAttribute('open')).not.toBeNull();

    await page.locator('#rate-aggregation summary').click();
    await page.fill('#rate-aggregation-max', '10');
    await page.fill('#rate-aggregation-ms', '1000');
    await page.locator('#rate-aggregation').getByRole('button', { name: 'Set' }).click();
    await page.locator('#live', { hasText: '10 per 1 s' }).waitFor();
    expect(await h.runtime.broker.queue('aggregation').getGlobalRateLimit()).toEqual({
      max: 10,
      duration: 1000,
    });
    await page.locator('#rate-aggregation').getByRole('button', { name: 'Remove' }).click();
    await eventually(async () => (await h.runtime.broker.queue('aggregation').getGlobalRateLimit()) === null);
    await context.close();
  });

  it("a delayed run's page says when it will run, in local and relative time", async () => {
    const context = await newContext({ timezoneId: 'Asia/Tokyo' });
    const page = await context.newPage();
    const run = await h.runtime.enqueue('web_sleep', { kwargs: { seconds: 0 } }, { countdown: 3600 });
    await page.goto(`${server.url}/tasks/${run.id}`);
    const when = page.locator('.delayed time');
    await when.waitFor();
    const iso = (await when.getAttribute('datetime')) ?? '';
    const notBefore = new Date(iso);
    expect(notBefore.getTime()).toBeGreaterThan(Date.now());
    // Tokyo is UTC+9 all year: the text is the local time, the title the exact UTC one.
    const tokyo = new Date(notBefore.getTime() + 9 * 3_600_000).toISOString().slice(0, 16).replace('T', ' ');
    expect(await when.innerText()).toContain(tokyo);
    expect(await when.innerText()).toMatch(/\(in (59|60) min\)/);
    expect(await when.getAttribute('title')).toBe(`${iso.slice(0, 19).replace('T', ' ')} UTC`);
    await page.screenshot({ path: `${OUT}/delayed-run.png`, fullPage: true });
    // Run now: it may start at once, and it runs.
    await page.getByRole('button', { name: 'Run now' }).click();
    await page.locator('#live .badge', { hasText: 'succeeded' }).first().waitFor({ timeout: 20_000 });
    await context.close();
  });

  it("runs a task with a countdown from the form, with the chosen task's argument hints", async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/tasks`);
    await page.selectOption('select[name="task"][data-hints]', 'backfill_aggregations');
    expect(await page.locator('#apply-hint').innerText()).toContain('start_date, end_date, granularity');
    expect(await page.locator('input[name="args"]').getAttribute('placeholder')).toBe(
      '["start_date","end_date","granularity"]',
    );
    await page.selectOption('select[name="task"][data-hints]', 'web_sleep');
    expect(await page.locator('#apply-hint').innerText()).toContain('seconds');
    await page.fill('input[name="kwargs"]', '{"seconds": 0}');
    await page.fill('input[name="countdown"]', '600');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForURL(/\/tasks\/[0-9a-f-]{36}$/);
    await page.locator('.delayed time').waitFor();
    expect(await page.locator('.delayed time').innerText()).toMatch(/\(in (9|10) min\)/);
    await context.close();
  });

  it('charts every rollup table, and queue length over time', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/rollups`);
    for (const def of builtinRollups) {
      const chart = page.locator(`[data-rollup="${def.name}"] figure.chart`).first();
      await chart.waitFor();
    }
    expect(await page.locator('[data-rollup]').count()).toBe(builtinRollups.length);
    // The hourly table has rows from the seed: its lines are drawn.
    expect(await page.locator('[data-rollup="execution_metrics_hourly"] svg path').count()).toBeGreaterThan(
      0,
    );
    await page.screenshot({ path: `${OUT}/rollups-every-table.png`, fullPage: true });

    // A run waiting for its countdown: the queue-length chart's last point counts it.
    await h.runtime.enqueue('web_sleep', { kwargs: { seconds: 0 } }, { countdown: 3600 });
    await page.goto(`${server.url}/charts`);
    await page.locator('[data-chart="queue-length"] svg path').first().waitFor({ state: 'attached' });
    const tips = await page.locator('[data-chart="queue-length"] svg rect.hover title').allTextContents();
    expect(tips.at(-1)).toMatch(/maintenance: [1-9]/);
    await page.screenshot({ path: `${OUT}/charts-queue-length.png`, fullPage: true });
    await context.close();
  });

  it('sorts a column on a header click, keeps filters without empty parameters, and links a retry both ways', async () => {
    const context = await newContext();
    const page = await context.newPage();
    const failed = await h.runtime.enqueue('web_flaky', { args: ['use-1'] });
    await eventually(async () => (await failed.state()) === 'failed');

    await page.goto(`${server.url}/tasks`);
    await page.selectOption('select[name="state"]', 'failed');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/\/tasks\?/);
    expect(new URL(page.url()).search).toBe('?state=failed');

    await page.goto(`${server.url}/tasks`);
    const taskHeader = page.locator('table.runs th', { hasText: 'Task' });
    await taskHeader.click();
    expect(await taskHeader.getAttribute('aria-sort')).toBe('ascending');
    const names = await page.locator('table.runs tbody tr td:first-child a').allInnerTexts();
    expect(names).toEqual([...names].sort((a, b) => a.localeCompare(b)));
    await taskHeader.click();
    expect(await taskHeader.getAttribute('aria-sort')).toBe('descending');

    await page.goto(`${server.url}/tasks/${failed.id}`);
    await page.getByRole('button', { name: 'Retry' }).click();
    await page.waitForURL(/\/tasks\/[0-9a-f-]{36}$/);
    await page.locator('a.retry-of', { hasText: failed.id }).waitFor();
    await page.locator('a.retry-of').click();
    await page.locator('a.retried-as').first().waitFor();
    await context.close();
  });

  it('serves its icon, and shows error pages with the navigation', async () => {
    const context = await newContext();
    const page = await context.newPage();
    const failures: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') failures.push(m.text());
    });
    page.on('response', (r) => {
      if (r.status() >= 400) failures.push(`${r.status()} ${r.url()}`);
    });
    await page.goto(`${server.url}/`);
    await page.waitForLoadState('networkidle');
    expect(failures).toEqual([]);
    expect((await page.request.get(`${server.url}/favicon.ico`)).status()).toBe(200);

    const res = await page.goto(`${server.url}/no-such-page`);
    expect(res?.status()).toBe(404);
    expect(await page.locator('nav.top a', { hasText: 'Workers' }).count()).toBe(1);
    await context.close();
  });
});
