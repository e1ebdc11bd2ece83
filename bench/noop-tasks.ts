/**
 * Tasks that exist only in the benchmark, registered through the runtime's `taskModules` seam (loaded
 * by the bench process and by every task thread of its workers). Their bodies do nothing but report
 * when they started, so what is measured around them is the job system's own cost.
 */
import { z } from 'zod';
import type { AnyTaskDefinition, TaskDefinition } from '../src/tasks/index.ts';

/** Wall-clock milliseconds with sub-millisecond precision, comparable across threads of one machine. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

export interface NoopResult {
  /** wallMs() when the task body began. */
  startedAt: number;
}

const noop: TaskDefinition<object, object, NoopResult> = {
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

/**
 * The same, scheduled every minute: the beat enqueues it like any periodic task. Only a runtime that
 * loads this module knows it, and the benchmark runs its beat on a compressed clock.
 */
const scheduledNoop: TaskDefinition<object, object, NoopResult> = {
  ...noop,
  name: 'bench_scheduled_noop',
  queue: 'aggregation',
  description: 'does nothing, every minute; returns the time its body started',
  schedule: { cron: '* * * * *', periodSeconds: 60, enabled: () => true },
};

export const tasks: AnyTaskDefinition[] = [noop, scheduledNoop].map((t) => t as AnyTaskDefinition);
