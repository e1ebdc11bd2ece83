import { describe, expect, it } from 'vitest';
import {
  createControl,
  latestSlot,
  parseCron,
  slotsBetween,
  startBeat,
  startWorker,
  type BeatHandle,
} from '../../src/runtime/index.ts';
import { taskRegistry } from '../../src/tasks/index.ts';
import { createTestDatabase } from '../support/database.ts';
import { eventually, testRedisUrl, testRuntime, workerOptions } from '../runtime/runtime-harness.ts';
import { spawnCli } from './cli-process.ts';

/**
 * Three beats on the real clock: the leader an `aggjobs beat` process, killed with -9 right after it
 * enqueued its catch-up slots; two standbys in this process race to take over. test/runtime/beat.test.ts
 * checks exactly-once with three beats on a fake clock and the takeover after a kill; this checks
 * the slots across the kill itself: the takeover's catch-up must not enqueue a slot again, and none
 * is missing. Every run runs once (attempt 1) on the worker.
 */
describe('three beats, the active one killed with -9', () => {
  it('every slot is enqueued exactly once across the failover', async () => {
    const db = await createTestDatabase();
    const runtime = await testRuntime('redis', db);
    const control = createControl(runtime);
    const worker = await startWorker(runtime, workerOptions({ name: 'w-beat-kill' }));
    const started = new Date();
    const leader = spawnCli(['beat'], {
      DATABASE_URL: db.url,
      REDIS_URL: testRedisUrl,
      BROKER_KEY_PREFIX: runtime.broker.namespace,
      BEAT_LEASE_SECONDS: '2',
      LOG_LEVEL: 'warn',
    });
    const standbys: BeatHandle[] = [];
    try {
      await eventually(
        async () => (await control.beat())?.holder.startsWith(`beat-${leader.child.pid}@`),
        30_000,
      );
      // Its catch-up: one slot per enabled schedule, claimed in the ledger.
      const schedules = Object.values(taskRegistry).filter((t) => t.schedule !== undefined);
      await eventually(async () => {
        const { rows } = await db.pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM aggjobs.beat_slots',
        );
        return (rows[0]?.n ?? 0) >= schedules.length ? true : undefined;
      }, 20_000);
      for (const name of ['standby-1', 'standby-2']) {
        standbys.push(startBeat(runtime, { name, tickMs: 200, leaseSeconds: 2, catchup: 'once' }));
      }
      await leader.stop('SIGKILL');
      const newLeader = await eventually(async () => standbys.find((b) => b.isLeader()), 15_000);
      // A few more ticks as leader, then the books are closed.
      await new Promise((r) => setTimeout(r, 2000));
      expect(standbys.filter((b) => b.isLeader())).toEqual([newLeader]);
      const ended = new Date();
      await eventually(async () => {
        const { rows } = await db.pool.query(`SELECT 1 FROM aggjobs.task_runs WHERE state <> 'succeeded'`);
        return rows.length === 0 ? true : undefined;
      }, 40_000);

      const { rows } = await db.pool.query<{ task: string; slot: Date; enqueued: boolean }>(
        'SELECT task, slot, enqueued FROM aggjobs.beat_slots ORDER BY task, slot',
      );
      expect(rows.filter((r) => !r.enqueued)).toEqual([]);
      for (const task of schedules) {
        const cron = parseCron(task.schedule?.cron ?? '');
        const first = latestSlot(cron, started, 'UTC') ?? started;
        // A slot that falls in the last second may or may not have been reached: allowed either way.
        const must = [first, ...slotsBetween(cron, first, new Date(ended.getTime() - 1000), 'UTC')];
        const may = [first, ...slotsBetween(cron, first, new Date(Date.now() + 1000), 'UTC')];
        const got = rows.filter((r) => r.task === task.name).map((r) => r.slot.getTime());
        for (const s of must) expect(got, task.name).toContain(s.getTime());
        for (const g of got)
          expect(
            may.map((s) => s.getTime()),
            task.name,
          ).toContain(g);
      }
      // Each slot's run ran once: one row, attempt 1.
      const runs = await db.pool.query<{ id: string; attempts: number }>(
        `SELECT id, attempts FROM aggjobs.task_runs WHERE id LIKE '%@%'`,
      );
      expect(runs.rows).toHaveLength(rows.length);
      expect(runs.rows.filter((r) => r.attempts !== 1)).toEqual([]);
    } finally {
      await leader.stop('SIGKILL');
      for (const b of standbys) await b.close();
      await worker.close();
    }
  });
});
