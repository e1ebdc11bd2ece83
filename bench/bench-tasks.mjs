/**
 * Tasks that exist only in the benchmark, registered through the runtime's `taskModules` seam (loaded
 * by the bench process, by its worker processes and by every task thread). Plain JavaScript, so that
 * a worker process built from `dist/` loads it without tsx. Their bodies report when they started
 * (`performance.timeOrigin + performance.now()`: wall-clock milliseconds comparable across threads
 * and processes of one machine), so what is measured around them is the job system's own cost.
 */
import { performance } from 'node:perf_hooks';
import { z } from 'zod';

const wallMs = () => performance.timeOrigin + performance.now();

const noop = {
  name: 'bench_noop',
  queue: 'maintenance',
  description: 'does nothing; returns the time its body started',
  positional: [],
  schema: () => z.strictObject({}),
  hardLimitSeconds: 60,
  async run() {
    return { startedAt: wallMs() };
  },
};

/** A trivial task that touches the database: one statement through the run's pool. */
const statement = {
  ...noop,
  name: 'bench_statement',
  description: 'runs one trivial statement; returns the time its body started',
  async run(ctx) {
    const startedAt = wallMs();
    await ctx.pool.query('SELECT 1');
    return { startedAt };
  },
};

/**
 * The no-op, scheduled every minute: the beat enqueues it like any periodic task. Only a runtime that
 * loads this module knows it, and the benchmark runs its beat on a compressed clock.
 */
const scheduledNoop = {
  ...noop,
  name: 'bench_scheduled_noop',
  queue: 'aggregation',
  description: 'does nothing, every minute; returns the time its body started',
  schedule: { cron: '* * * * *', periodSeconds: 60, enabled: () => true },
};

export const tasks = [noop, statement, scheduledNoop];
