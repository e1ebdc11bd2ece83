import { beforeAll, describe, expect, it } from 'vitest';
import { eventually, webHarness, type WebHarness } from './web-harness.ts';

/** The same dashboard on the Redis broker: queues, a run through a worker, Bull Board, metrics. */
let h: WebHarness;
const post = (path: string, body: unknown = {}) =>
  h.app.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

beforeAll(async () => {
  h = await webHarness('redis');
  await h.startWorker();
});

describe('on Redis', () => {
  it('reports the Redis broker and its queues', async () => {
    const data = (await (await h.app.request('/api/queues')).json()) as {
      broker: string;
      queues: Array<{ queue: string; paused: boolean }>;
    };
    expect(data.broker).toBe('redis');
    expect(data.queues.map((q) => q.queue).sort()).toEqual(['aggregation', 'maintenance']);
    expect((await post('/api/queues/aggregation/pause')).status).toBe(200);
    const paused = (await (await h.app.request('/api/queues')).json()) as {
      queues: Array<{ queue: string; paused: boolean }>;
    };
    expect(paused.queues.find((q) => q.queue === 'aggregation')?.paused).toBe(true);
    expect((await post('/api/queues/aggregation/resume')).status).toBe(200);
    expect((await post('/api/queues/nope/pause')).status).toBe(400);
  });

  it('runs a failed task again from the API until it succeeds', async () => {
    const { id } = (await (await post('/api/tasks/web_flaky/apply', { args: ['redis-1'] })).json()) as {
      id: string;
    };
    const stateOf = async (runId: string) =>
      (
        (await (await h.app.request(`/api/tasks/${encodeURIComponent(runId)}`)).json()) as {
          run: { state: string };
        }
      ).run.state;
    await eventually(async () => (await stateOf(id)) === 'failed');
    const retried = (await (await post(`/api/tasks/${encodeURIComponent(id)}/retry`)).json()) as {
      id: string;
    };
    await eventually(async () => (await stateOf(retried.id)) === 'succeeded');
  });

  it('mounts Bull Board on Redis and serves metrics', async () => {
    const api = await h.app.request('/queues/api/queues');
    expect(api.status).toBe(200);
    const data = (await api.json()) as { queues: Array<{ name: string }> };
    expect(data.queues.map((q) => q.name).sort()).toEqual(['aggregation', 'maintenance']);
    const metrics = await (await h.app.request('/metrics')).text();
    expect(metrics).toMatch(/^aggjobs_queue_jobs\{queue="aggregation",state="active"\} \d+$/m);
  });
});
