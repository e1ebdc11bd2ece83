import { beforeAll, describe, expect, it } from 'vitest';
import { eventually, webHarness, type WebHarness } from './web-harness.ts';

/**
 * Issue 15's "use" items that the pages and the API answer without a browser: a backfill's window
 * runs grouped under it in the task list, a retry and its run linked both ways, a delayed run's
 * "will run at" and promote, results shown as fields, links without empty parameters, error pages
 * with the navigation, the favicon. (The browser items are in test/e2e/dashboard-use.browser.test.ts.)
 */
let h: WebHarness;
const json = (body: unknown) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

async function stateOf(id: string): Promise<string | undefined> {
  const { rows } = await h.db.pool.query<{ state: string }>(
    'SELECT state FROM aggjobs.task_runs WHERE id = $1',
    [id],
  );
  return rows[0]?.state;
}

beforeAll(async () => {
  h = await webHarness('postgres');
  await h.startWorker('use-api-worker');
});

describe('dashboard use, server side', () => {
  it("hides a backfill's window runs from the task list by default and counts them on the backfill", async () => {
    const res = await h.app.request(
      '/api/backfills',
      json({ start_date: '2026-11-01', end_date: '2026-11-04', granularity: 'daily' }),
    );
    const { id } = (await res.json()) as { id: string };
    await eventually(async () => (await stateOf(id)) === 'succeeded');
    const { rows } = await h.db.pool.query<{ id: string }>(
      'SELECT id FROM aggjobs.task_runs WHERE parent_id = $1',
      [id],
    );
    expect(rows.length).toBeGreaterThan(0);

    const list = await (await h.app.request('/tasks')).text();
    expect(list).toContain(id.slice(0, 24));
    expect(list).toContain(`${rows.length} child window runs`);
    for (const child of rows) expect(list).not.toContain(child.id.slice(0, 24));
    expect(list).toContain('backfill window runs hidden');

    const all = await (await h.app.request('/tasks?children=1')).text();
    for (const child of rows) expect(all).toContain(child.id.slice(0, 24));
    // The API lists every run, as before.
    const api = (await (await h.app.request('/api/tasks?limit=500')).json()) as {
      runs: Array<{ id: string }>;
    };
    expect(api.runs.map((r) => r.id)).toEqual(expect.arrayContaining(rows.map((r) => r.id)));
  });

  it('links a retry and the run it retried both ways', async () => {
    const failed = await h.runtime.enqueue('web_flaky', { args: ['use-api-1'] });
    await eventually(async () => (await stateOf(failed.id)) === 'failed');
    const retry = (await (await h.app.request(`/api/tasks/${failed.id}/retry`, json({}))).json()) as {
      id: string;
    };
    const detail = (await (await h.app.request(`/api/tasks/${retry.id}`)).json()) as {
      run: { retryOf: string };
    };
    expect(detail.run.retryOf).toBe(failed.id);
    const retriedPage = await (await h.app.request(`/tasks/${failed.id}`)).text();
    expect(retriedPage).toContain('Retried as');
    expect(retriedPage).toContain(`href="/tasks/${retry.id}"`);
    const retryPage = await (await h.app.request(`/tasks/${retry.id}`)).text();
    expect(retryPage).toContain('Retry of');
    expect(retryPage).toContain(`href="/tasks/${failed.id}"`);
  });

  it('shows when a delayed run will run, and promotes it', async () => {
    const res = await h.app.request(
      '/api/tasks/web_sleep/apply',
      json({ kwargs: { seconds: 0 }, countdown: 3600 }),
    );
    const { id } = (await res.json()) as { id: string };
    const page = await (await h.app.request(`/tasks/${id}`)).text();
    expect(page).toContain('will run at');
    expect(page).toMatch(/<time datetime="[^"]+" title="[^"]+Z">/);
    expect(page).toContain('Run now');
    const list = await (await h.app.request('/tasks?task=web_sleep')).text();
    expect(list).toContain('will run');

    const promoted = (await (await h.app.request(`/api/tasks/${id}/promote`, json({}))).json()) as {
      action: string;
    };
    expect(promoted.action).toBe('promoted');
    await eventually(async () => (await stateOf(id)) === 'succeeded');
    const after = (await (await h.app.request(`/api/tasks/${id}/promote`, json({}))).json()) as {
      action: string;
    };
    expect(after.action).toBe('none');
  });

  it('shows a result as its fields, with the JSON below', async () => {
    const run = await h.runtime.enqueue('hourly_rollup', {});
    await run.get({ timeout: 30 });
    const page = await (await h.app.request(`/tasks/${run.id}`)).text();
    expect(page).toContain('class="props result-fields"');
    expect(page).toMatch(/<dt>mode<\/dt>/);
    expect(page).toContain('<summary class="muted">JSON</summary>');
    const list = await (await h.app.request('/tasks?task=hourly_rollup')).text();
    expect(list).toMatch(/<span class="kv"\s*><span class="muted">mode<\/span>/);
  });

  it('builds pager links without empty parameters', async () => {
    for (let i = 0; i < 3; i++)
      await h.runtime.enqueue('web_sleep', { kwargs: { seconds: 0 } }, { countdown: 3600 });
    const page = await (await h.app.request('/tasks?task=web_sleep&state=&worker=&q=&limit=1&page=2')).text();
    const links = [...page.matchAll(/href="(\/tasks\?[^"]*)"/g)].map((m) => m[1]?.replace(/&amp;/g, '&'));
    expect(links).toContain('/tasks?task=web_sleep&limit=1');
    expect(links).toContain('/tasks?task=web_sleep&limit=1&page=3');
  });

  it('error pages carry the navigation; the favicon needs no credentials', async () => {
    const res = await h.app.request('/no-such-page');
    expect(res.status).toBe(404);
    const page = await res.text();
    expect(page).toContain('<nav class="top">');
    expect(page).toContain('href="/workers"');
    expect(page).toContain('rel="icon"');
    const icon = await h.app.request('/favicon.ico');
    expect(icon.status).toBe(200);
    expect(icon.headers.get('content-type')).toBe('image/svg+xml');
  });
});
