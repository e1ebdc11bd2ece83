import { startBeat, startWorker } from '../src/runtime/index.ts';
import { wallMs, type NoopResult } from './wall-clock.ts';
import {
  benchRuntime,
  benchWorkerOptions,
  enqueueMany,
  forgetRuns,
  sleep,
  waitFor,
  waitForRuns,
  type Backend,
  type BenchDatabase,
} from './runtime-harness.ts';

export interface BeatPrecision {
  /** Slot → start of the task body, ms (real time). */
  delays: number[];
  /** Slots due in the measured span, and how many of them the beat enqueued. */
  expected: number;
  enqueued: number;
  speedup: number;
}

/** The compressed clock starts here (a time no real slot of the bench database reaches). */
const FAKE_START = Date.parse('2030-01-01T00:00:15Z');
const MINUTE = 60_000;

/**
 * Slot time → task start, with the beat as `aggjobs beat` runs it (a tick every second), a worker of
 * concurrency 4 and bench_scheduled_noop scheduled `* * * * *`. The beat reads its time from the
 * runtime's clock seam, which runs `speedup` times faster than real time from 2030-01-01T00:00:15Z:
 * at 30×, a minute's slot comes every 2 real seconds. Each slot's real instant is when the compressed
 * clock reached it, `real0 + (slot − start) / speedup`; the delay is from that instant to the task
 * body's start (wall clock). What the beat does in a tick (lease, due slots, ledger insert, job add)
 * takes real time, uncompressed; only the wait between slots is shortened.
 *
 * Catch-up is `none` (a first tick enqueues no stale slots of other schedules), and the built-in
 * rollups' flags are off; the maintenance schedules the beat still enqueues (health check, views) go
 * to a queue no worker consumes here and are dropped with the namespace. The slot ledger and runs of
 * the compressed span are deleted before and after.
 */
export async function beatPrecision(
  backend: Backend,
  db: BenchDatabase,
  options: { slots: number; speedup: number },
): Promise<BeatPrecision> {
  const { speedup } = options;
  let real0 = wallMs();
  const now = (): Date => new Date(FAKE_START + (wallMs() - real0) * speedup);
  const forgetSpan = async (): Promise<void> => {
    await db.pool.query(
      `DELETE FROM aggjobs.task_runs WHERE id IN (SELECT run_id FROM aggjobs.beat_slots WHERE slot >= $1)`,
      [new Date(FAKE_START - MINUTE)],
    );
    await db.pool.query('DELETE FROM aggjobs.beat_slots WHERE slot >= $1', [new Date(FAKE_START - MINUTE)]);
    await db.pool.query('DELETE FROM aggjobs.beat_leader');
  };
  await forgetSpan();
  const bench = await benchRuntime(backend, db, {
    now,
    env: {
      HOURLY_ROLLUP_ENABLED: 'false',
      DAILY_ROLLUP_ENABLED: 'false',
      WEEKLY_ROLLUP_ENABLED: 'false',
      MONTHLY_ROLLUP_ENABLED: 'false',
    },
  });
  const { runtime } = bench;
  const worker = await startWorker(
    runtime,
    benchWorkerOptions({ name: `bench-beat-${backend}-${process.pid}`, queues: ['aggregation'] }),
  );
  const warm = await enqueueMany(runtime, 'bench_scheduled_noop', 8, undefined, 8);
  try {
    await waitForRuns(db, warm, 120_000);
    const firstSlot = Math.ceil(FAKE_START / MINUTE) * MINUTE;
    const lastSlot = firstSlot + (options.slots - 1) * MINUTE;
    const realAt = (slot: number): number => real0 + (slot - FAKE_START) / speedup;
    real0 = wallMs();
    const beat = startBeat(runtime, { name: `bench-beat-${backend}-${process.pid}`, catchup: 'none' });
    try {
      await sleep(realAt(lastSlot) - wallMs() + 3000);
    } finally {
      await beat.close();
    }
    const { rows } = await waitFor(
      async () => {
        const result = await db.pool.query<{ slot: Date; state: string; result: NoopResult | null }>(
          `SELECT b.slot, r.state, r.result FROM aggjobs.beat_slots b JOIN aggjobs.task_runs r ON r.id = b.run_id
           WHERE b.task = 'bench_scheduled_noop' AND b.slot >= $1 AND b.slot <= $2 ORDER BY b.slot`,
          [new Date(firstSlot), new Date(lastSlot)],
        );
        return result.rows.every((r) => r.state === 'succeeded') ? result : undefined;
      },
      60_000,
      'scheduled runs finishing',
      100,
    );
    return {
      delays: rows.map((r) => (r.result?.startedAt ?? Number.NaN) - realAt(r.slot.getTime())),
      expected: options.slots,
      enqueued: rows.length,
      speedup,
    };
  } finally {
    await worker.close();
    await bench.dispose();
    await forgetRuns(db, warm);
    await forgetSpan();
    await db.pool.query('DELETE FROM aggjobs.workers WHERE name = $1', [worker.name]);
  }
}
