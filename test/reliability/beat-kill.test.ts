import { describe, expect, it } from 'vitest';
import {
  createControl,
  slotRunId,
  startBeat,
  startWorker,
  type BeatHandle,
} from '../../src/runtime/index.ts';
import { taskRegistry } from '../../src/tasks/index.ts';
import { latestSlotAtOrBefore, slotsAfter } from '../support/cron-oracle.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { eventually, testRedisUrl, testRuntime, workerOptions } from '../runtime/runtime-harness.ts';
import { spawnCli } from './cli-process.ts';

interface LedgerRow {
  task: string;
  slot: Date;
  run_id: string;
  enqueued: boolean;
  state: string | null;
  attempts: number | null;
}

/** The slot ledger with each slot's run (null when the run row is missing). */
async function ledger(db: TestDatabase): Promise<LedgerRow[]> {
  const { rows } = await db.pool.query<LedgerRow>(
    `SELECT b.task, b.slot, b.run_id, b.enqueued, r.state, r.attempts
     FROM aggjobs.beat_slots b LEFT JOIN aggjobs.task_runs r ON r.id = b.run_id
     ORDER BY b.task, b.slot`,
  );
  return rows;
}

/** The ledger once every slot is sent and its run succeeded; names the rows that never got there. */
async function settledLedger(db: TestDatabase): Promise<LedgerRow[]> {
  return await eventually(async () => {
    const rows = await ledger(db);
    return rows.every((r) => r.enqueued && r.state === 'succeeded') ? rows : undefined;
  }, 40_000).catch(async (error: unknown) => {
    const open = (await ledger(db)).filter((r) => !r.enqueued || r.state !== 'succeeded');
    throw new Error(`slots not settled within 40 s: ${JSON.stringify(open)}`, { cause: error });
  });
}

/**
 * Three beats on the real clock: the leader an `aggjobs beat` process, killed with -9 right after it
 * claimed its catch-up slots (possibly before it sent them all); two standbys in this process race
 * to take over. test/runtime/beat.test.ts checks exactly-once with three beats on a fake clock and
 * the takeover after a kill; this checks the slots across the kill itself: the takeover's catch-up
 * must not enqueue a slot again, and none is missing. Every run runs once (attempt 1) on the worker.
 *
 * Nothing here depends on when the process's first tick comes: the process takes seconds to start
 * and a slot boundary may pass meanwhile, so the first slot of each schedule is read from the ledger
 * (bounded by the latest slot before the spawn and the latest slot once it was seen), and what is
 * asserted is the ledger's shape from there on: every slot of the schedule, none twice, none missing,
 * up to the latest slot before the new leader's last tick. The expected slots come from
 * test/support/cron-oracle.ts (a minute-by-minute walk), not from the beat's own cron code.
 */
describe('three beats, the active one killed with -9', () => {
  it('every slot is enqueued exactly once across the failover', async () => {
    const db = await createTestDatabase();
    const runtime = await testRuntime('redis', db);
    const zone = runtime.settings.analyticsTimezone;
    const control = createControl(runtime);
    const worker = await startWorker(runtime, workerOptions({ name: 'w-beat-kill' }));
    const schedules = Object.values(taskRegistry).flatMap((t) =>
      t.schedule === undefined ? [] : [{ task: t.name, cron: t.schedule.cron }],
    );
    const spawned = new Date();
    const leader = spawnCli(['beat'], {
      DATABASE_URL: db.url,
      REDIS_URL: testRedisUrl,
      BROKER_KEY_PREFIX: runtime.broker.namespace,
      ANALYTICS_TIMEZONE: zone,
      BEAT_CATCHUP: 'once',
      BEAT_LEASE_SECONDS: '2',
      LOG_LEVEL: 'warn',
    });
    const standbys: BeatHandle[] = [];
    try {
      await eventually(
        async () => (await control.beat())?.holder.startsWith(`beat-${leader.child.pid}@`),
        30_000,
      );
      // Its catch-up: one slot per schedule, claimed in the ledger.
      const claimed = await eventually(async () => {
        const rows = await ledger(db);
        return schedules.every((s) => rows.some((r) => r.task === s.task)) ? rows : undefined;
      }, 20_000);
      const seen = new Date();
      for (const name of ['standby-1', 'standby-2']) {
        standbys.push(startBeat(runtime, { name, tickMs: 200, leaseSeconds: 2, catchup: 'once' }));
      }
      await leader.stop('SIGKILL');
      const first = new Map<string, Date>();
      for (const { task, cron } of schedules) {
        const slot = claimed.find((r) => r.task === task)?.slot;
        // Catch-up 'once' on an empty ledger claims the latest slot at the first tick.
        const earliest = latestSlotAtOrBefore(cron, spawned, zone)?.getTime() ?? 0;
        const latest = latestSlotAtOrBefore(cron, seen, zone)?.getTime() ?? 0;
        expect(slot?.getTime(), task).toBeGreaterThanOrEqual(earliest);
        expect(slot?.getTime(), task).toBeLessThanOrEqual(latest);
        if (slot !== undefined) first.set(task, slot);
      }

      await eventually(async () => standbys.find((b) => b.isLeader()), 15_000);
      // One more tick of each standby, after `checkpoint`: whichever leads has then claimed every
      // slot up to the latest one at `checkpoint`, whatever the kill interrupted.
      const checkpoint = new Date();
      await Promise.all(standbys.map((b) => b.tick()));
      expect(standbys.filter((b) => b.isLeader())).toHaveLength(1);
      // A slot the killed leader claimed but did not send is re-sent, one it sent but did not
      // record is recorded: wait (the beats still ticking) until every slot ran and is settled.
      await settledLedger(db);
      for (const b of standbys) await b.close();
      const closed = new Date();
      // A slot claimed after the wait above, before the close, must run too.
      const rows = await settledLedger(db);

      for (const { task, cron } of schedules) {
        const got = rows.filter((r) => r.task === task).map((r) => r.slot.getTime());
        const from = first.get(task);
        if (from === undefined) throw new Error(`${task}: no first slot`);
        const upTo = latestSlotAtOrBefore(cron, checkpoint, zone) ?? from;
        const atMost = latestSlotAtOrBefore(cron, closed, zone) ?? from;
        // Every slot from the first on, none twice, none missing, none in the future.
        const last = got.at(-1) ?? 0;
        expect(last, task).toBeGreaterThanOrEqual(upTo.getTime());
        expect(last, task).toBeLessThanOrEqual(atMost.getTime());
        expect(got, task).toEqual(
          [from, ...slotsAfter(cron, from, new Date(last), zone)].map((s) => s.getTime()),
        );
      }
      // Each slot's run ran once: its own run (named by the slot), attempt 1, and no other slot run.
      expect(rows.filter((r) => r.run_id !== slotRunId(r.task, r.slot) || r.attempts !== 1)).toEqual([]);
      const runs = await db.pool.query<{ id: string }>(
        `SELECT id FROM aggjobs.task_runs WHERE id LIKE '%@%' ORDER BY id`,
      );
      expect(runs.rows.map((r) => r.id).sort()).toEqual(rows.map((r) => r.run_id).sort());
    } finally {
      await leader.stop('SIGKILL');
      for (const b of standbys) await b.close();
      await worker.close();
    }
  });
});
