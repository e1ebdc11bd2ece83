import { beforeAll, describe, expect, it } from 'vitest';
import { eventually, webHarness, type WebHarness } from '../web/web-harness.ts';

/**
 * Markup where test/web/security.test.ts does not put it: in a live worker's name, and in the args
 * and error of a run that really ran on it. Every page that shows them renders text, not markup.
 */
const EVIL_WORKER = '<script>alert("worker")</script>@<img src=x onerror=alert(2)>';
const EVIL_ARG = '<script>alert("arg")</script>';
let h: WebHarness;

beforeAll(async () => {
  h = await webHarness('postgres');
  await h.startWorker(EVIL_WORKER);
});

describe('markup in worker names, task args and errors', () => {
  it('renders as text on every page', async () => {
    const res = await h.app.request('/api/tasks/web_flaky/apply', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ args: [EVIL_ARG], kwargs: { note: EVIL_ARG } }),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    // web_flaky fails its first run, its error quoting a <script> tag.
    await eventually(async () => {
      const { rows } = await h.db.pool.query<{ state: string; worker: string | null }>(
        'SELECT state, worker FROM aggjobs.task_runs WHERE id = $1',
        [id],
      );
      return rows[0]?.state === 'failed' && rows[0].worker === EVIL_WORKER ? true : undefined;
    });
    for (const path of [
      '/',
      '/workers',
      '/tasks',
      `/tasks/${encodeURIComponent(id)}`,
      `/tasks?worker=${encodeURIComponent(EVIL_WORKER)}`,
    ]) {
      const page = await h.app.request(path);
      expect(page.status, path).toBe(200);
      const html = await page.text();
      expect(html, path).not.toContain('<script>alert');
      expect(html, path).not.toContain('<img src=x');
    }
    const workers = await (await h.app.request('/workers')).text();
    expect(workers).toContain('&lt;script&gt;alert(&quot;worker&quot;)&lt;/script&gt;');
    const run = await (await h.app.request(`/tasks/${encodeURIComponent(id)}`)).text();
    expect(run).toContain('&lt;script&gt;alert(&quot;arg&quot;)&lt;/script&gt;');
    // The API answers JSON (its content type is not HTML): the strings come back verbatim as data.
    const api = await h.app.request(`/api/tasks/${encodeURIComponent(id)}`);
    expect(api.headers.get('content-type')).toContain('application/json');
  });
});
