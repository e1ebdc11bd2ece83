import { beforeAll, describe, expect, it } from 'vitest';
import { eventually, webHarness, type WebHarness } from './web-harness.ts';

/** The JSON API in-process (`app.request`), on BullMQ's PostgreSQL backend, with a real worker. */
let h: WebHarness;
const json = (body: unknown) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});
type Run = {
  id: string;
  state: string;
  error: string | null;
  errorStack: string | null;
  logs: Array<{ level: string; msg: string; data?: Record<string, unknown> }> | null;
  result: unknown;
  args: Record<string, unknown>;
};

async function runOf(id: string): Promise<Run> {
  const res = await h.app.request(`/api/tasks/${encodeURIComponent(id)}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { run: Run }).run;
}

async function settled(id: string, states: string[]): Promise<Run> {
  return await eventually(async () => {
    const run = await runOf(id);
    return states.includes(run.state) ? run : undefined;
  });
}

beforeAll(async () => {
  h = await webHarness('postgres');
  await h.startWorker();
});

describe('tasks', () => {
  it('applies a task, lists and filters it, fails it, retries it to success', async () => {
    const res = await h.app.request(
      '/api/tasks/web_flaky/apply',
      json({ args: ['k1'], kwargs: { note: 'first' } }),
    );
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const failed = await settled(id, ['failed']);
    expect(failed.error).toContain('<script>alert("xss")</script>');
    expect(failed.args).toEqual({ key: 'k1', note: 'first' });
    // The password of the URL quoted in the error never leaves the dashboard.
    expect(failed.error).not.toContain('hunter2secret');
    expect(failed.error).toContain('postgres://app:***@db.internal');
    // The run page has the error's stack and the lines the task logged, scrubbed the same way.
    expect(failed.errorStack).toMatch(/^Error: first attempt of k1 fails[\s\S]*\n\s+at /);
    expect(failed.errorStack).not.toContain('hunter2secret');
    expect(failed.logs).toEqual(
      expect.arrayContaining([expect.objectContaining({ level: 'info', msg: 'flaky attempt for k1' })]),
    );
    expect(JSON.stringify(failed.logs)).not.toContain('hunter2secret');

    const list = (await (await h.app.request('/api/tasks?task=web_flaky&state=failed')).json()) as {
      runs: Run[];
      hasMore: boolean;
    };
    expect(list.runs.map((r) => r.id)).toEqual([id]);
    const searched = (await (await h.app.request('/api/tasks?q=first%20attempt%20of%20k1')).json()) as {
      runs: Run[];
    };
    expect(searched.runs.map((r) => r.id)).toEqual([id]);
    const inArgs = (await (await h.app.request('/api/tasks?q=%22first%22')).json()) as { runs: Run[] };
    expect(inArgs.runs.map((r) => r.id)).toEqual([id]);
    const none = (await (await h.app.request('/api/tasks?q=100%25_nothing')).json()) as { runs: Run[] };
    expect(none.runs).toEqual([]);

    const retry = await h.app.request(`/api/tasks/${encodeURIComponent(id)}/retry`, json({}));
    expect(retry.status).toBe(202);
    const retried = (await retry.json()) as { id: string; retryOf: string };
    expect(retried.retryOf).toBe(id);
    const ok = await settled(retried.id, ['succeeded']);
    expect(ok.result).toEqual({ key: 'k1', ok: true, html: '<b>bold</b>' });

    // A succeeded run cannot be retried.
    const again = await h.app.request(`/api/tasks/${encodeURIComponent(retried.id)}/retry`, json({}));
    expect(again.status).toBe(409);
  });

  it('paginates the history', async () => {
    for (let i = 0; i < 3; i++) {
      await h.app.request('/api/tasks/web_sleep/apply', json({ kwargs: { seconds: 0 } }));
    }
    const page1 = (await (await h.app.request('/api/tasks?task=web_sleep&limit=2')).json()) as {
      runs: Run[];
      hasMore: boolean;
    };
    const page2 = (await (await h.app.request('/api/tasks?task=web_sleep&limit=2&page=2')).json()) as {
      runs: Run[];
      hasMore: boolean;
    };
    expect(page1.runs).toHaveLength(2);
    expect(page1.hasMore).toBe(true);
    expect(page2.runs.length).toBeGreaterThanOrEqual(1);
    expect(page2.runs.map((r) => r.id)).not.toContain(page1.runs[0]?.id);
  });

  it('terminates a running run', async () => {
    const { id } = (await (
      await h.app.request('/api/tasks/web_sleep/apply', json({ kwargs: { seconds: 60 } }))
    ).json()) as { id: string };
    await settled(id, ['running']);
    const res = await h.app.request(`/api/tasks/${encodeURIComponent(id)}/revoke`, json({ terminate: true }));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { action: string }).action).toBe('terminating');
    const run = await settled(id, ['revoked']);
    expect(run.error).toMatch(/terminated/);
  });

  it('revokes a queued run before it starts', async () => {
    await h.app.request('/api/queues/maintenance/pause', { method: 'POST' });
    try {
      const { id } = (await (
        await h.app.request('/api/tasks/web_sleep/apply', json({ kwargs: { seconds: 0 } }))
      ).json()) as { id: string };
      const res = await h.app.request(`/api/tasks/${encodeURIComponent(id)}/revoke`, json({}));
      expect(((await res.json()) as { action: string }).action).toBe('revoked');
      expect((await runOf(id)).state).toBe('revoked');
    } finally {
      await h.app.request('/api/queues/maintenance/resume', { method: 'POST' });
    }
  });
});

describe('workers, schedules and backfills', () => {
  it("changes a worker's concurrency and shuts a worker down", async () => {
    // Its own name: workers of one process share `<pid>@<host>`, and a shutdown is addressed by name.
    const extra = await h.startWorker(`extra-${process.pid}`);
    const workerOf = async (name: string) =>
      (
        (await (await h.app.request('/api/workers')).json()) as {
          workers: Array<{ name: string; concurrency: number; online: boolean }>;
        }
      ).workers.find((w) => w.name === name);
    await eventually(async () => (await workerOf(extra.name))?.online === true);
    const res = await h.app.request(
      `/api/workers/${encodeURIComponent(extra.name)}/concurrency`,
      json({ concurrency: 3 }),
    );
    expect(res.status).toBe(202);
    await eventually(async () => (await workerOf(extra.name))?.concurrency === 3);
    expect(extra.stats().concurrency).toBe(3);
    expect(
      (await h.app.request(`/api/workers/${encodeURIComponent(extra.name)}/shutdown`, json({}))).status,
    ).toBe(202);
    await eventually(async () => (await workerOf(extra.name))?.online === false);
  });

  it('runs a schedule now', async () => {
    const res = await h.app.request('/api/schedules/health_check/run', json({}));
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const run = await settled(id, ['succeeded', 'failed']);
    expect(run.state).toBe('succeeded');
    const schedules = (await (await h.app.request('/api/schedules')).json()) as {
      schedules: Array<{ task: string; lastRun: { id: string } | null }>;
    };
    expect(schedules.schedules.find((s) => s.task === 'health_check')?.lastRun?.id).toBe(id);
  });

  it('starts a backfill and reports its progress', async () => {
    const res = await h.app.request(
      '/api/backfills',
      json({ start_date: '2026-11-01', end_date: '2026-11-03', granularity: 'daily' }),
    );
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    await settled(id, ['succeeded']);
    const list = (await (await h.app.request('/api/backfills')).json()) as {
      backfills: Array<{ run: { id: string }; progress: { total: number; done: number } | null }>;
    };
    const entry = list.backfills.find((b) => b.run.id === id);
    expect(entry?.progress?.total).toBeGreaterThan(0);
    expect(entry?.progress?.done).toBe(entry?.progress?.total);
    const detail = (await (await h.app.request(`/api/tasks/${id}`)).json()) as { children: unknown[] };
    expect(detail.children.length).toBe(entry?.progress?.total);
  });
});

describe('bad input and unknown ids', () => {
  it('answers 400 naming the field and the rule', async () => {
    const cases: Array<[string, RequestInit | undefined, string]> = [
      ['/api/tasks?state=exploded', undefined, 'state'],
      ['/api/tasks?limit=0', undefined, 'limit'],
      ['/api/tasks?from=yesterday', undefined, 'from'],
      ['/api/tasks?from=2026-11-02T00:00Z&to=2026-11-01T00:00Z', undefined, 'to'],
      ['/api/tasks/web_flaky/apply', json({ args: 'k1' }), 'args'],
      ['/api/tasks/web_flaky/apply', json({ kwargs: { key: 5 } }), 'key'],
      ['/api/tasks/web_flaky/apply', json({ kwargs: {}, extra: 1 }), '(body)'],
      ['/api/tasks/web_sleep/apply', json({ args: [1, 2, 3] }), 'args'],
      [
        '/api/tasks/web_sleep/apply',
        { method: 'POST', body: '{not json', headers: { 'content-type': 'application/json' } },
        '(body)',
      ],
      ['/api/tasks/x/revoke', json({ terminate: 'yes' }), 'terminate'],
      ['/api/rollups/execution_metrics_hourly/series?workspace=abc', undefined, 'workspace'],
      ['/api/rollups/user_activity_daily/series?from=2026-13-01', undefined, 'from'],
      [
        '/api/backfills',
        json({ start_date: '2026-11-01', end_date: '2026-11-02', granularity: 'yearly' }),
        'granularity',
      ],
      ['/api/workers/none/concurrency', json({ concurrency: 0 }), 'concurrency'],
      ['/api/stats/runs?hours=-1', undefined, 'hours'],
    ];
    for (const [path, init, field] of cases) {
      const res = await h.app.request(path, init);
      const body = (await res.json()) as { error: string; problems?: Array<{ field: string; rule: string }> };
      // /api/workers/none answers 404 before looking at the body; every other case is a 400.
      if (path.startsWith('/api/workers/none')) {
        expect(res.status, path).toBe(404);
        continue;
      }
      expect(res.status, path).toBe(400);
      expect(
        body.problems?.map((p) => p.field),
        path,
      ).toContain(field);
      expect(
        body.problems?.every((p) => p.rule.length > 0),
        path,
      ).toBe(true);
    }
  });

  it('answers 404 for unknown runs, tasks, tables, workers and schedules', async () => {
    const cases: Array<[string, RequestInit | undefined]> = [
      ['/api/tasks/no-such-run', undefined],
      ['/api/tasks/no-such-run/retry', json({})],
      ['/api/tasks/no-such-run/revoke', json({})],
      ['/api/tasks/no_such_task/apply', json({})],
      ['/api/rollups/no_such_table/series', undefined],
      ['/api/workers/nobody/shutdown', json({})],
      ['/api/schedules/web_flaky/run', json({})],
      ['/api/backfills/no-such-run/cancel', json({})],
      ['/api/nothing-here', undefined],
    ];
    for (const [path, init] of cases) {
      const res = await h.app.request(path, init);
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { error: string }).error, path).toBeTruthy();
    }
  });
});

describe('read endpoints', () => {
  it('health, queues, workers, schedules, rollups, series, stats, backfills', async () => {
    const health = await h.app.request('/api/health');
    expect([200, 503]).toContain(health.status);
    const report = (await health.json()) as { status: string; checks: Record<string, unknown> };
    expect(report.checks.database).toBeDefined();

    const queues = (await (await h.app.request('/api/queues')).json()) as {
      broker: string;
      queues: Array<{ queue: string }>;
    };
    expect(queues.broker).toBe('postgres');
    expect(queues.queues.map((q) => q.queue).sort()).toEqual(['aggregation', 'maintenance']);

    const workers = (await (await h.app.request('/api/workers')).json()) as {
      workers: Array<{ online: boolean; pid: number }>;
    };
    expect(workers.workers.some((w) => w.online && w.pid === process.pid)).toBe(true);

    const schedules = (await (await h.app.request('/api/schedules')).json()) as {
      schedules: Array<{ task: string; cron: string; nextRunAt: string | null }>;
    };
    expect(schedules.schedules.find((s) => s.task === 'hourly_rollup')?.cron).toBe('5 * * * *');

    const rollups = (await (await h.app.request('/api/rollups')).json()) as {
      rollups: Array<{ table: string }>;
      views: unknown[];
    };
    expect(rollups.rollups.map((r) => r.table)).toContain('execution_metrics_hourly');
    expect(rollups.views).toHaveLength(3);

    await h.db.pool
      .query(
        `INSERT INTO analytics.execution_metrics_hourly (bucket_start, workspace_id, executions_total, executions_succeeded, executions_failed, executions_timed_out, executions_cancelled, executions_running, duration_ms_sum, credits_used, distinct_users, distinct_workflows)
      VALUES (date_trunc('hour', now()) - interval '1 hour', 1, 10, 8, 2, 0, 0, 0, 1000, 2.5, 3, 2), (date_trunc('hour', now()) - interval '1 hour', 2, 5, 5, 0, 0, 0, 0, 100, 1, 1, 1)`,
      )
      .catch(async () => {
        // The column list of the rollup table is derived from its definition: fall back to the minimum.
        await h.db.pool
          .query(`INSERT INTO analytics.execution_metrics_hourly (bucket_start, workspace_id, executions_total, executions_failed, credits_used)
        VALUES (date_trunc('hour', now()) - interval '1 hour', 1, 10, 2, 2.5), (date_trunc('hour', now()) - interval '1 hour', 2, 5, 0, 1)`);
      });
    const all = (await (await h.app.request('/api/rollups/execution_metrics_hourly/series')).json()) as {
      points: Array<Record<string, number>>;
    };
    expect(all.points).toHaveLength(1);
    expect(all.points[0]?.executions_total).toBe(15);
    expect(all.points[0]?.credits_used).toBe(3.5);
    expect(all.points[0]).not.toHaveProperty('distinct_users');
    const one = (await (
      await h.app.request('/api/rollups/execution_metrics_hourly/series?workspace=1')
    ).json()) as { points: Array<Record<string, number>> };
    expect(one.points[0]?.executions_failed).toBe(2);

    const stats = (await (await h.app.request('/api/stats/runs?hours=6')).json()) as {
      bucketSeconds: number;
      series: unknown[];
      tasks: Array<{ task: string }>;
    };
    expect(stats.bucketSeconds).toBe(300);
    expect(stats.series.length).toBeGreaterThan(60);
    expect(stats.tasks.map((t) => t.task)).toContain('web_flaky');

    const backfills = (await (await h.app.request('/api/backfills')).json()) as { backfills: unknown[] };
    expect(Array.isArray(backfills.backfills)).toBe(true);
  });

  it('serves Prometheus metrics', async () => {
    const res = await h.app.request('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toMatch(/^# TYPE aggjobs_task_runtime_seconds histogram$/m);
    expect(text).toMatch(/^aggjobs_task_runtime_seconds_bucket\{task="web_flaky",le="\+Inf"\} \d+$/m);
    expect(text).toMatch(/^aggjobs_task_runs\{task="web_flaky",state="succeeded"\} \d+$/m);
    expect(text).toMatch(/^aggjobs_queue_jobs\{queue="maintenance",state="waiting"\} \d+$/m);
    expect(text).toMatch(/^aggjobs_workers_online [1-9]\d*$/m);
    expect(text).toMatch(/^aggjobs_rollup_lag_seconds\{table="execution_metrics_hourly"\} -?\d+$/m);
    expect(text).toMatch(/^aggjobs_change_capture_lag_seconds \d+$/m);
  });

  it('mounts Bull Board at /queues on the PostgreSQL broker', async () => {
    const page = await h.app.request('/queues');
    expect(page.status).toBe(200);
    const body = await page.text();
    expect(body).toContain('aggjobs queues');
    expect(body).not.toContain('fonts.googleapis.com');
    const api = await h.app.request('/queues/api/queues');
    expect(api.status).toBe(200);
    const data = (await api.json()) as { queues: Array<{ name: string }> };
    expect(data.queues.map((q) => q.name).sort()).toEqual(['aggregation', 'maintenance']);
  });
});
