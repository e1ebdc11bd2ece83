/**
 * `--pool async`: tasks run in the worker's own event loop. The same runs, the same records, and
 * the hard limit still ends a statement stuck in PostgreSQL (its session is terminated).
 */
import { describe, expect, it } from 'vitest';
import { startWorker } from '../../src/runtime/index.ts';
import { createTestDatabase } from '../support/database.ts';
import { backends, eventually, testRuntime, workerOptions } from './runtime-harness.ts';

const db = await createTestDatabase();

describe.each(backends)('a worker with the async pool on %s', (backend) => {
  it('runs tasks, retries transient failures, and enforces the hard limit on stuck SQL', async () => {
    const runtime = await testRuntime(backend, db);
    const worker = await startWorker(runtime, workerOptions({ name: `w-${backend}-async`, pool: 'async' }));
    try {
      expect(worker.stats().threads).toBe(0);
      const sleep = await runtime.enqueue('test_sleep', { kwargs: { ms: 50 } });
      const flaky = await runtime.enqueue('test_flaky', { kwargs: { succeed_on: 2 } });
      const stuck = await runtime.enqueue('test_sql_sleep', {});
      await sleep.get({ timeout: 30 });
      await flaky.get({ timeout: 30 });
      expect(await flaky.info()).toMatchObject({ state: 'succeeded', attempts: 2 });
      const run = await eventually(async () => {
        const r = await stuck.info();
        return r?.state === 'timed_out' ? r : undefined;
      }, 30_000);
      expect(run.error).toMatch(/hard time limit of 2 s/);
      const { rows } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE $1`,
        [`aggjobs run ${stuck.id} #%`],
      );
      expect(rows[0]?.n).toBe(0);
      // Nothing ran in a thread.
      expect(worker.stats().threads).toBe(0);
    } finally {
      await worker.close();
    }
  });
});
