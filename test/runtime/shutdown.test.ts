import { describe, expect, it } from 'vitest';
import { startWorker } from '../../src/runtime/index.ts';
import { createTestDatabase } from '../support/database.ts';
import { backends, eventually, testRuntime, workerOptions } from './runtime-harness.ts';

const db = await createTestDatabase();

describe.each(backends)('worker lifecycle on %s', (backend) => {
  it('SIGTERM: running tasks finish within the grace period', async () => {
    const runtime = await testRuntime(backend, db);
    const worker = await startWorker(
      runtime,
      workerOptions({ name: `w-${backend}-grace`, shutdownGraceSeconds: 10 }),
    );
    const handle = await runtime.enqueue('test_sleep', { kwargs: { ms: 1500 } });
    await eventually(async () => (await handle.state()) === 'running');
    await worker.close();
    expect(await handle.info()).toMatchObject({ state: 'succeeded', attempts: 1 });
  });

  it('SIGTERM: past the grace period a task is aborted and runs again on another worker', async () => {
    const runtime = await testRuntime(backend, db);
    const first = await startWorker(
      runtime,
      workerOptions({ name: `w-${backend}-short`, shutdownGraceSeconds: 1 }),
    );
    const handle = await runtime.enqueue('test_sleep', { kwargs: { ms: 4000 } });
    await eventually(async () => (await handle.state()) === 'running');
    await first.close();
    expect(await handle.info()).toMatchObject({
      state: 'retrying',
      error: 'the worker shut down while it ran',
    });
    const second = await startWorker(runtime, workerOptions({ name: `w-${backend}-next` }));
    try {
      await expect(handle.get({ timeout: 30 })).resolves.toHaveProperty('threadId');
      expect(await handle.info()).toMatchObject({ state: 'succeeded', attempts: 2, worker: second.name });
    } finally {
      await second.close();
    }
  });

  it('autoscale follows the queue depth between min and max', async () => {
    const runtime = await testRuntime(backend, db);
    const worker = await startWorker(
      runtime,
      workerOptions({
        name: `w-${backend}-autoscale`,
        queues: ['aggregation'],
        concurrency: 4,
        autoscale: { max: 4, min: 1 },
        autoscaleIntervalSeconds: 0.3,
      }),
    );
    try {
      expect(worker.stats().concurrency).toBe(1);
      const handles = await Promise.all(
        Array.from({ length: 8 }, () => runtime.enqueue('test_sleep', { kwargs: { ms: 1500 } })),
      );
      await eventually(async () => worker.stats().concurrency === 4);
      await Promise.all(handles.map((h) => h.get({ timeout: 40 })));
      await eventually(async () => worker.stats().concurrency === 1);
    } finally {
      await worker.close();
    }
  });

  it('replaces a task thread whose heap passes max-memory-per-child', async () => {
    const runtime = await testRuntime(backend, db);
    const worker = await startWorker(
      runtime,
      workerOptions({
        name: `w-${backend}-memory`,
        concurrency: 1,
        pool: 'threads',
        maxMemoryPerChildKb: 1,
        queues: ['aggregation'],
      }),
    );
    try {
      for (let i = 0; i < 3; i += 1) {
        await (await runtime.enqueue('test_sleep', { kwargs: { ms: 1 } })).get({ timeout: 20 });
      }
      expect(worker.stats().recycled).toBe(3);
    } finally {
      await worker.close();
    }
  });
});
