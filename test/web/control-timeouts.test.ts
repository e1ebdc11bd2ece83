import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { tableLock } from '../support/table-lock.ts';
import { webHarness, type WebHarness } from './web-harness.ts';

/**
 * Issue 15, the control queries: the queues, workers and a run's page read through the runtime's
 * Control, which ran on the runtime's own pool without a statement or lock timeout. The dashboard's
 * Control now runs on its timed pool: under a held ACCESS EXCLUSIVE lock each page answers with what
 * it could read and says what it could not. The per-test timeout (20 s, 20x the lock timeout) is
 * the only clock: without the timeouts these requests wait for as long as the lock is held.
 */
let h: WebHarness;
let runId: string;

const lock = tableLock(() => h.db.url);

beforeAll(async () => {
  h = await webHarness('postgres');
  // A worker row, and a run to open (no worker runs it: it stays queued).
  const worker = await h.startWorker('timeouts-worker');
  await worker.close();
  runId = (await h.runtime.enqueue('web_sleep', { kwargs: { seconds: 0 } }, { countdown: 3600 })).id;
});

afterEach(lock.release);

describe('control queries under a held lock', () => {
  it('/workers shows the queues and says it could not read the workers', { timeout: 20_000 }, async () => {
    await lock.hold('aggjobs.workers');
    const res = await h.app.request('/workers');
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toContain('Could not read the workers: another session holds a lock');
    // The queues come from the broker: read and shown.
    expect(page).toMatch(/<td>aggregation<\/td>/);
    expect(page).not.toContain('timeouts-worker');
  });

  it("a run's page says it could not read the run, instead of hanging", { timeout: 20_000 }, async () => {
    await lock.hold('aggjobs.task_runs');
    const res = await h.app.request(`/tasks/${runId}`);
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toContain('Could not read this run: another session holds a lock');
    expect(page).toContain(runId);
  });

  it('the task list keeps its filters and says it could not read the runs', { timeout: 20_000 }, async () => {
    await lock.hold('aggjobs.task_runs');
    const res = await h.app.request('/tasks');
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toContain('Could not read the runs: another session holds a lock');
    expect(page).toContain('Run a task');
    // The workers' list (another table) was read: the worker is in the filter.
    expect(page).toContain('timeouts-worker');
  });

  it('/schedules and /backfill answer and say what they could not read', { timeout: 20_000 }, async () => {
    await lock.hold('aggjobs.task_runs');
    const schedules = await h.app.request('/schedules');
    expect(schedules.status).toBe(200);
    const schedulesPage = await schedules.text();
    expect(schedulesPage).toContain('Could not read the schedules: another session holds a lock');
    const backfill = await h.app.request('/backfill');
    expect(backfill.status).toBe(200);
    const backfillPage = await backfill.text();
    expect(backfillPage).toContain('Could not read the backfills: another session holds a lock');
    // Its form is there: it needs no read.
    expect(backfillPage).toContain('Start backfill');
  });

  it('the queues and workers API answers 503 naming the lock', { timeout: 20_000 }, async () => {
    await lock.hold('aggjobs.workers');
    const res = await h.app.request('/api/workers');
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toContain('another session holds a lock');
  });

  it('without a lock, the same pages read everything', async () => {
    const workers = await (await h.app.request('/workers')).text();
    expect(workers).not.toContain('Could not read');
    expect(workers).toContain('timeouts-worker');
    const run = await (await h.app.request(`/tasks/${runId}`)).text();
    expect(run).not.toContain('Could not read');
    expect(run).toContain('will run at');
  });
});
