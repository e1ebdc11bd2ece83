import { mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentHour, seedDemoData } from '../../src/workload/index.ts';
import { startDashboard, type DashboardServer } from '../../src/web/index.ts';
import { eventually, webHarness, type WebHarness } from '../web/web-harness.ts';
import { findChromium } from '../support/find-chromium.ts';

/**
 * The dashboard once in a real headless Chromium, against a real runtime (PostgreSQL broker, a
 * worker, basic auth): the overview shows a failed run, Retry makes a new run that succeeds,
 * Terminate stops a running one; screenshots go to test-results/.
 */
// Looked up as the file loads: without a browser the file fails, its tests are not even collected.
const executablePath = findChromium();
const OUT = 'test-results';
let h: WebHarness;
let server: DashboardServer;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  h = await webHarness('postgres', { env: { DASHBOARD_USER: 'ops', DASHBOARD_PASSWORD: 'e2e-password' } });
  await seedDemoData(h.db.pool, {
    seed: 7,
    days: 2,
    executionsPerDay: 3000,
    workspaces: 20,
    users: 100,
    end: currentHour(),
  });
  await h.startWorker();
  for (const task of [
    'hourly_rollup',
    'daily_rollup',
    'weekly_rollup',
    'monthly_rollup',
    'refresh_materialized_views',
  ]) {
    await (await h.runtime.enqueue(task, {})).get({ timeout: 30 });
  }
  server = await startDashboard({ ...h.deps, port: 0, host: '127.0.0.1' });
  browser = await chromium.launch({
    executablePath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  const context = await browser.newContext({
    viewport: { width: 1400, height: 1000 },
    httpCredentials: { username: 'ops', password: 'e2e-password' },
  });
  page = await context.newPage();
  page.on('dialog', (dialog) => void dialog.accept());
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('dashboard in a browser', () => {
  it('retries a failed run from the overview and sees it succeed', async () => {
    const failed = await h.runtime.enqueue('web_flaky', { args: ['browser-1'] });
    await eventually(async () => (await failed.state()) === 'failed');

    await page.goto(`${server.url}/`);
    const row = page.locator(`tr[data-run="${failed.id}"]`);
    await row.waitFor();
    expect(await row.locator('.badge').innerText()).toBe('failed');
    // The error's <script> is text, not markup.
    expect(await row.innerText()).toContain('<script>alert("xss")</script>');
    await page.screenshot({ path: `${OUT}/overview.png`, fullPage: true });

    await row.getByRole('button', { name: 'Retry' }).click();
    await page.waitForURL(/\/tasks\/[0-9a-f-]{36}$/);
    const newId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop() ?? '');
    expect(newId).not.toBe(failed.id);
    await page.locator('#live .badge', { hasText: 'succeeded' }).first().waitFor({ timeout: 20_000 });
    // The result is shown as its fields (issue 15); its markup is text.
    const result = page.locator('#live section.card', { has: page.locator('h2', { hasText: 'Result' }) });
    expect(await result.innerText()).toContain('<b>bold</b>');
  });

  it('shows new runs in the history without a reload', async () => {
    await page.goto(`${server.url}/tasks?task=web_sleep`);
    const run = await h.runtime.enqueue('web_sleep', { kwargs: { seconds: 0 } });
    await page.locator(`tr[data-run="${run.id}"]`).waitFor({ timeout: 15_000 });
  });

  it('terminates a running run after confirmation', async () => {
    const sleeping = await h.runtime.enqueue('web_sleep', { kwargs: { seconds: 120 } });
    await eventually(async () => (await sleeping.state()) === 'running');
    await page.goto(`${server.url}/tasks?task=web_sleep&state=running`);
    await page.locator(`tr[data-run="${sleeping.id}"] a`).first().click();
    await page.getByRole('button', { name: 'Terminate' }).click();
    await page.locator('#flash', { hasText: 'Terminate sent.' }).waitFor();
    await page.locator('#live .badge', { hasText: 'revoked' }).first().waitFor({ timeout: 20_000 });
    expect(await sleeping.state()).toBe('revoked');
  });

  it('draws the rollup charts', async () => {
    await page.goto(`${server.url}/rollups`);
    await page.locator('figure.chart svg rect').first().waitFor();
    expect(await page.locator('figure.chart svg').count()).toBeGreaterThanOrEqual(2);
    await page.screenshot({ path: `${OUT}/rollups.png`, fullPage: true });
  });
});
