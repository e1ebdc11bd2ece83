import { beforeAll, describe, expect, it } from 'vitest';
import { startWorker, type WorkerHandle } from '../../src/runtime/index.ts';
import type { QueueName } from '../../src/tasks/index.ts';
import { eventually, webHarness, type Backend, type WebHarness } from './web-harness.ts';

/**
 * Bull Board's changes under /queues, on both brokers: each one goes through aggjobs (add is an
 * enqueue, removing or cleaning an unstarted job revokes its run, promote is Control's) or is
 * refused; every test checks the run row in aggjobs.task_runs and the job in the broker.
 */
describe.each<Backend>(['postgres', 'redis'])('Bull Board actions on %s', (backend) => {
  let h: WebHarness;
  const hour = 3600;

  beforeAll(async () => {
    h = await webHarness(backend);
  });

  const bb = (method: string, path: string, body?: unknown) =>
    h.app.request(`/queues/api/queues/${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const runOf = async (id: string) =>
    (
      await h.db.pool.query<{ id: string; task: string; state: string; args: unknown }>(
        'SELECT id, task, state, args FROM aggjobs.task_runs WHERE id = $1',
        [id],
      )
    ).rows[0];
  const runCount = async () =>
    Number((await h.db.pool.query<{ n: string }>('SELECT count(*) AS n FROM aggjobs.task_runs')).rows[0]?.n);
  const jobOf = async (id: string, queue: QueueName = 'maintenance') => {
    const job = await h.runtime.broker.queue(queue).getJob(id);
    return job === undefined ? undefined : { job, state: await job.getState() };
  };
  const jobCount = async (queue: QueueName = 'maintenance') =>
    Object.values(await h.runtime.broker.queue(queue).getJobCounts()).reduce((a, b) => a + b, 0);
  const delayedRun = async (seconds = 0) =>
    (await h.runtime.enqueue('web_sleep', { kwargs: { seconds } }, { countdown: hour })).id;

  it('refuses an add whose arguments no enqueue path accepts, and writes nothing', async () => {
    const [runs, jobs] = [await runCount(), await jobCount()];
    const res = await bb('POST', 'maintenance/add', {
      name: 'cleanup_old_data',
      data: { args: { retention_days: -1 } },
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; problems: Array<{ field: string; rule: string }> };
    expect(body.problems.map((p) => p.field)).toEqual(['data.args.retention_days']);
    expect(body.problems[0]?.rule).toMatch(/\S/);
    expect(await runCount()).toBe(runs);
    expect(await jobCount()).toBe(jobs);
  });

  it('refuses an add of an unknown task, of a task of another queue, or with foreign options', async () => {
    const [runs, jobs] = [await runCount(), await jobCount(), await jobCount('aggregation')];
    const unknown = await bb('POST', 'maintenance/add', { name: 'no_such_task', data: {} });
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { problems: Array<{ field: string }> }).problems[0]?.field).toBe(
      'name',
    );
    const elsewhere = await bb('POST', 'aggregation/add', { name: 'web_sleep', data: { args: {} } });
    expect(elsewhere.status).toBe(400);
    const options = await bb('POST', 'maintenance/add', {
      name: 'web_sleep',
      data: { args: {} },
      options: { priority: 1 },
    });
    expect(options.status).toBe(400);
    expect(((await options.json()) as { problems: Array<{ field: string }> }).problems[0]?.field).toBe(
      'options.priority',
    );
    const extraData = await bb('POST', 'maintenance/add', { name: 'web_sleep', data: { args: {}, x: 1 } });
    expect(extraData.status).toBe(400);
    expect(await runCount()).toBe(runs);
    expect(await jobCount()).toBe(jobs);
  });

  it('adds a valid job as a queued run whose id is the job id', async () => {
    const res = await bb('POST', 'maintenance/add', {
      name: 'web_sleep',
      data: { args: { seconds: 1 } },
      options: { delay: hour * 1000 },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { job: { id: string; name: string }; status: string };
    expect(body.status).toBe('delayed');
    expect(body.job.name).toBe('web_sleep');
    expect(await runOf(body.job.id)).toMatchObject({
      task: 'web_sleep',
      state: 'queued',
      args: { seconds: 1 },
    });
    const job = await jobOf(body.job.id);
    expect(job?.state).toBe('delayed');
    expect(job?.job.data).toEqual({ args: { seconds: 1 } });
    // The UI's "Duplicate" sends the job's own data and options back: a new run, same arguments.
    const shown = (await (await h.app.request(`/queues/api/queues/maintenance/${body.job.id}`)).json()) as {
      job: { data: unknown; opts: unknown };
    };
    const dup = await bb('POST', 'maintenance/add', {
      name: 'web_sleep',
      data: shown.job.data,
      options: shown.job.opts,
    });
    expect(dup.status, JSON.stringify(shown.job.opts)).toBe(200);
    const copy = ((await dup.json()) as { job: { id: string } }).job.id;
    expect(copy).not.toBe(body.job.id);
    expect(await runOf(copy)).toMatchObject({ task: 'web_sleep', state: 'queued', args: { seconds: 1 } });
  });

  it('revokes the run of a removed delayed job', async () => {
    const id = await delayedRun();
    expect((await jobOf(id))?.state).toBe('delayed');
    expect((await bb('PUT', `maintenance/${id}/clean`)).status).toBe(204);
    expect((await runOf(id))?.state).toBe('revoked');
    expect(await jobOf(id)).toBeUndefined();
  });

  it('revokes the runs of cleaned delayed and waiting jobs', async () => {
    const delayed = [await delayedRun(), await delayedRun()];
    await h.runtime.broker.queue('maintenance').pause();
    const waiting = (await h.runtime.enqueue('web_sleep', { kwargs: { seconds: 0 } })).id;
    expect((await jobOf(waiting))?.state).toBe('waiting');
    const cleaned = await bb('PUT', 'maintenance/clean/delayed');
    expect(cleaned.status).toBe(200);
    expect(((await cleaned.json()) as { revoked: number }).revoked).toBeGreaterThanOrEqual(2);
    for (const id of delayed) {
      expect((await runOf(id))?.state).toBe('revoked');
      expect(await jobOf(id)).toBeUndefined();
    }
    expect((await runOf(waiting))?.state).toBe('queued');
    expect((await bb('PUT', 'maintenance/clean/paused')).status).toBe(200);
    expect((await runOf(waiting))?.state).toBe('revoked');
    expect(await jobOf(waiting)).toBeUndefined();
    await h.runtime.broker.queue('maintenance').resume();
  });

  it('refuses to clean active or waiting-children jobs, or an unknown status', async () => {
    expect((await bb('PUT', 'maintenance/clean/active')).status).toBe(409);
    expect((await bb('PUT', 'aggregation/clean/waiting-children')).status).toBe(409);
    expect((await bb('PUT', 'maintenance/clean/latest')).status).toBe(400);
  });

  it('promotes a delayed job through Control, keeping its run and id', async () => {
    const id = await delayedRun();
    expect((await bb('PUT', `maintenance/${id}/promote`)).status).toBe(204);
    expect(await runOf(id)).toMatchObject({ id, state: 'queued' });
    expect((await jobOf(id))?.state).toBe('waiting');
    const again = await bb('PUT', `maintenance/${id}/promote`);
    expect(again.status).toBe(409);
    const all = [await delayedRun(), await delayedRun()];
    expect((await bb('PUT', 'maintenance/promote')).status).toBe(200);
    for (const run of all) {
      expect(await runOf(run)).toMatchObject({ id: run, state: 'queued' });
      expect((await jobOf(run))?.state).toBe('waiting');
    }
  });

  it('pauses and resumes a queue through Control', async () => {
    expect((await bb('PUT', 'aggregation/pause')).status).toBe(200);
    expect(await h.runtime.broker.queue('aggregation').isPaused()).toBe(true);
    expect((await bb('PUT', 'aggregation/resume')).status).toBe(200);
    expect(await h.runtime.broker.queue('aggregation').isPaused()).toBe(false);
    expect((await bb('PUT', 'nope/pause')).status).toBe(404);
  });

  it('refuses retry, obliterate, empty, data and timing edits, limits, schedulers and unknown changes', async () => {
    const id = await delayedRun();
    const [runs, jobs] = [await runCount(), await jobCount()];
    const refused: Array<[string, string, unknown?]> = [
      ['PUT', `maintenance/${id}/retry`],
      ['PUT', 'maintenance/retry/failed'],
      ['PUT', 'maintenance/retry/completed'],
      ['PUT', 'maintenance/obliterate', { force: true }],
      ['PUT', 'maintenance/empty'],
      ['PATCH', `maintenance/${id}/update-data`, { jobData: { args: { seconds: -5 } } }],
      ['PATCH', `maintenance/${id}/delay`, { runAt: Date.now() }],
      ['PATCH', `maintenance/${id}/priority`, { priority: 5 }],
      ['PUT', `maintenance/${id}/remove-unprocessed-children`],
      ['PUT', 'maintenance/concurrency', { concurrency: 1 }],
      ['PUT', 'maintenance/rate-limit', { max: 1, duration: 1000 }],
      ['PUT', 'maintenance/rate-limit/release'],
      ['PUT', 'maintenance/job-schedulers/s1/remove'],
      ['PATCH', 'maintenance/job-schedulers/s1', { every: 1000 }],
      ['PUT', 'maintenance/job-schedulers/s1/run'],
      ['DELETE', `maintenance/${id}`],
    ];
    for (const [method, path, body] of refused) {
      const res = await bb(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(403);
      const answer = (await res.json()) as { error: string; message: string };
      expect(answer.error, `${method} ${path}`).toMatch(/\S/);
      expect(answer.message, `${method} ${path}`).toMatch(/\S/);
    }
    expect((await h.app.request('/queues/api/metrics/history/purge', { method: 'POST' })).status).toBe(403);
    expect(await runCount()).toBe(runs);
    expect(await jobCount()).toBe(jobs);
    expect(await runOf(id)).toMatchObject({ state: 'queued' });
    const job = await jobOf(id);
    expect(job?.state).toBe('delayed');
    expect(job?.job.data).toEqual({ args: { seconds: 0 } });
    expect(job?.job.opts.priority ?? 0).toBe(0);
    expect(await h.runtime.broker.queue('maintenance').getGlobalConcurrency()).toBeNull();
  });

  it('never resurrects a revoked run, runs a promoted one, and lets a finished job be removed', async () => {
    const removed = await delayedRun();
    expect((await bb('PUT', `maintenance/${removed}/clean`)).status).toBe(204);
    const promoted = await delayedRun();
    expect((await bb('PUT', `maintenance/${promoted}/promote`)).status).toBe(204);
    // The reaper looks every second for queued runs without a job, with no grace.
    let worker: WorkerHandle | undefined;
    try {
      worker = await startWorker(h.runtime, {
        queues: ['maintenance'],
        concurrency: 2,
        maxTasksPerChild: 1000,
        maxMemoryPerChildKb: 0,
        shutdownGraceSeconds: 2,
        heartbeatSeconds: 1,
        lostJobCheckSeconds: 1,
        lostJobGraceSeconds: 0,
      });
      await eventually(async () => (await runOf(promoted))?.state === 'succeeded');
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      await worker?.close();
    }
    expect((await runOf(removed))?.state).toBe('revoked');
    expect(await jobOf(removed)).toBeUndefined();
    expect((await jobOf(promoted))?.state).toBe('completed');
    expect((await bb('PUT', `maintenance/${promoted}/retry`)).status).toBe(403);
    expect((await jobOf(promoted))?.state).toBe('completed');
    expect((await bb('PUT', `maintenance/${promoted}/clean`)).status).toBe(204);
    expect(await jobOf(promoted)).toBeUndefined();
    expect((await runOf(promoted))?.state).toBe('succeeded');
  });
});
