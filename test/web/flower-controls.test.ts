import { beforeAll, describe, expect, it } from 'vitest';
import type { WorkerHandle } from '../../src/runtime/index.ts';
import { eventually, webHarness, type WebHarness } from './web-harness.ts';

/**
 * Issue 15: Flower's controls, each through the dashboard's API to a real worker (over the control
 * channel) or the broker, and each checked by its effect: the worker's heartbeat row, a run's
 * outcome, the broker's queue settings, the database.
 */
const TOKEN = 'flower-controls-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
const post = (body: unknown = {}) => ({
  method: 'POST',
  headers: { ...auth, 'content-type': 'application/json' },
  body: JSON.stringify(body),
});
let h: WebHarness;
let worker: WorkerHandle;

async function workerRow(name: string) {
  const { rows } = await h.db.pool.query<{ concurrency: number; queues: string[] }>(
    'SELECT concurrency, queues FROM aggjobs.workers WHERE name = $1',
    [name],
  );
  return rows[0];
}

async function stateOf(id: string): Promise<string | undefined> {
  const { rows } = await h.db.pool.query<{ state: string }>(
    'SELECT state FROM aggjobs.task_runs WHERE id = $1',
    [id],
  );
  return rows[0]?.state;
}

beforeAll(async () => {
  h = await webHarness('postgres', { env: { DASHBOARD_TOKEN: TOKEN } });
  worker = await h.startWorker('flower-worker');
});

describe("Flower's controls", () => {
  it('autoscale: the worker takes the new bounds (at the minimum while its queues are empty)', async () => {
    const res = await h.app.request(`/api/workers/${worker.name}/autoscale`, post({ max: 6, min: 3 }));
    expect(res.status).toBe(202);
    await eventually(async () => (await workerRow(worker.name))?.concurrency === 3);
    expect(worker.stats().concurrency).toBe(3);
    // Bounds in the wrong order are refused, naming the field.
    const bad = await h.app.request(`/api/workers/${worker.name}/autoscale`, post({ max: 2, min: 5 }));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { problems: Array<{ field: string }> }).problems[0]?.field).toBe('min');
  });

  it('pool restart: the idle run sessions of the worker are closed', async () => {
    const run = await h.runtime.enqueue('web_sleep', { kwargs: { seconds: 0 } });
    await run.get({ timeout: 20 });
    const sessions = async (): Promise<number> => {
      const { rows } = await h.db.pool.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'aggjobs run %'",
      );
      return Number(rows[0]?.n ?? 0);
    };
    // The finished run's session pool is kept for the next run (the async pool reuses it).
    expect(await sessions()).toBeGreaterThan(0);
    expect((await h.app.request(`/api/workers/${worker.name}/pool-restart`, post())).status).toBe(202);
    await eventually(async () => (await sessions()) === 0);
  });

  it('queue consumers: cancel one, and add it back', async () => {
    const cancel = await h.app.request(
      `/api/workers/${worker.name}/consumers/cancel`,
      post({ queue: 'maintenance' }),
    );
    expect(cancel.status).toBe(202);
    await eventually(async () => (await workerRow(worker.name))?.queues.join() === 'aggregation');
    const waiting = await h.runtime.enqueue('web_sleep', { kwargs: { seconds: 0 } });
    // The worker still takes the other queue's jobs; the maintenance run stays queued meanwhile.
    await (await h.runtime.enqueue('hourly_rollup', {})).get({ timeout: 30 });
    expect(await stateOf(waiting.id)).toBe('queued');

    const add = await h.app.request(
      `/api/workers/${worker.name}/consumers/add`,
      post({ queue: 'maintenance' }),
    );
    expect(add.status).toBe(202);
    await eventually(async () => (await stateOf(waiting.id)) === 'succeeded');
    expect((await workerRow(worker.name))?.queues.sort()).toEqual(['aggregation', 'maintenance']);
    // A queue that does not exist is refused, naming the field.
    const bad = await h.app.request(`/api/workers/${worker.name}/consumers/add`, post({ queue: 'bogus' }));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { problems: Array<{ field: string }> }).problems[0]?.field).toBe('queue');
  });

  it('time limits changed at run time: the next run of the task ends timed out at the new limit', async () => {
    const res = await h.app.request('/api/tasks/web_sleep/time-limits', post({ soft: 1, hard: 2 }));
    expect(res.status).toBe(202);
    // The message reaches the worker over LISTEN/NOTIFY before any job it fetches afterwards.
    const run = await h.runtime.enqueue('web_sleep', { kwargs: { seconds: 120 } });
    try {
      await eventually(async () => (await stateOf(run.id)) === 'timed_out', 30_000);
    } finally {
      await h.app.request('/api/tasks/web_sleep/time-limits', post({ soft: 300, hard: 360 }));
    }
    expect(
      (await h.app.request('/api/tasks/no_such_task/time-limits', post({ soft: 1, hard: 2 }))).status,
    ).toBe(404);
    const bad = await h.app.request('/api/tasks/web_sleep/time-limits', post({ soft: 5, hard: 2 }));
    expect(bad.status).toBe(400);
  });

  it('rate limits changed at run time: set on the queue (over every worker) and removed', async () => {
    const set = await h.app.request('/api/queues/aggregation/rate-limit', post({ max: 5, durationMs: 1000 }));
    expect(set.status).toBe(200);
    expect(await h.runtime.broker.queue('aggregation').getGlobalRateLimit()).toEqual({
      max: 5,
      duration: 1000,
    });
    const queues = (await (await h.app.request('/api/queues', { headers: auth })).json()) as {
      queues: Array<{ queue: string; rateLimit: unknown }>;
    };
    expect(queues.queues.find((q) => q.queue === 'aggregation')?.rateLimit).toEqual({
      max: 5,
      durationMs: 1000,
    });
    const page = await (await h.app.request('/workers', { headers: auth })).text();
    expect(page).toContain('5 per 1 s');

    expect((await h.app.request('/api/queues/aggregation/rate-limit', post({ max: null }))).status).toBe(200);
    expect(await h.runtime.broker.queue('aggregation').getGlobalRateLimit()).toBeNull();
    expect(
      (await h.app.request('/api/queues/aggregation/rate-limit', post({ max: 0, durationMs: 1 }))).status,
    ).toBe(400);
  });

  it('prunes offline workers and keeps the online ones', async () => {
    const gone = await h.startWorker('flower-gone');
    await gone.close();
    const res = await h.app.request('/api/workers/prune', post());
    expect(res.status).toBe(200);
    const { pruned } = (await res.json()) as { pruned: string[] };
    expect(pruned).toContain('flower-gone');
    expect(pruned).not.toContain(worker.name);
    const { workers } = (await (await h.app.request('/api/workers', { headers: auth })).json()) as {
      workers: Array<{ name: string }>;
    };
    expect(workers.map((w) => w.name)).toEqual([worker.name]);
  });

  it('shows the configuration with credentials hidden', async () => {
    const config = (await (await h.app.request('/api/config', { headers: auth })).json()) as {
      settings: Array<{ name: string; value: unknown }>;
      tasks: Array<{ name: string; hardSeconds: number }>;
    };
    expect(config.settings.find((s) => s.name === 'dashboardToken')?.value).toBe('(hidden)');
    expect(config.settings.find((s) => s.name === 'dashboardPassword')?.value).toBeNull();
    expect(config.settings.find((s) => s.name === 'analyticsTimezone')?.value).toBe(
      h.settings.analyticsTimezone,
    );
    expect(config.tasks.find((t) => t.name === 'web_sleep')).toBeDefined();
    const page = await (await h.app.request('/config', { headers: auth })).text();
    expect(page).toContain('analyticsTimezone');
    expect(page).toContain('(hidden)');
    expect(page).not.toContain(TOKEN);
    expect(JSON.stringify(config)).not.toContain(TOKEN);
  });
});
