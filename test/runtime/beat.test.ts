import { spawn } from 'node:child_process';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  createControl,
  listSchedules,
  nextRunTimes,
  startBeat,
  type BeatHandle,
} from '../../src/runtime/index.ts';
import { taskRegistry } from '../../src/tasks/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { backends, eventually, testRedisUrl, testRuntime, type Backend } from './runtime-harness.ts';
import { cliEntry } from '../support/cli-command.ts';

const databases: Record<Backend, TestDatabase> = {
  redis: await createTestDatabase(),
  postgres: await createTestDatabase(),
};

const MINUTE = 60_000;
/** 2026-11-29 is a Sunday. */
const T0 = new Date('2026-11-29T10:07:00Z');

function clock(start: Date): { now: () => Date; advance: (ms: number) => void; set: (d: Date) => void } {
  let t = start.getTime();
  return { now: () => new Date(t), advance: (ms) => void (t += ms), set: (d) => void (t = d.getTime()) };
}

async function runsOf(db: TestDatabase, task: string): Promise<string[]> {
  const { rows } = await db.pool.query<{ id: string }>(
    'SELECT id FROM aggjobs.task_runs WHERE task = $1 ORDER BY id',
    [task],
  );
  return rows.map((r) => r.id);
}

describe.each(backends)('beat on %s', (backend) => {
  const db = databases[backend];

  beforeEach(async () => {
    await db.pool.query('TRUNCATE aggjobs.beat_slots, aggjobs.task_runs, aggjobs.beat_leader');
  });

  it('three beats enqueue every slot exactly once', async () => {
    const c = clock(T0);
    const runtime = await testRuntime(backend, db, { now: c.now });
    const beats: BeatHandle[] = [0, 1, 2].map((i) =>
      startBeat(runtime, { name: `beat-${i}`, tickMs: 3_600_000, catchup: 'once' }),
    );
    try {
      for (let step = 0; step < 25; step += 1) {
        await Promise.all(beats.map((b) => b.tick()));
        c.advance(5 * MINUTE);
      }
      expect(beats.filter((b) => b.isLeader())).toHaveLength(1);
      // Ticks from 10:07 to 12:07 UTC on Sunday 2026-11-29: once at the start (catch-up of the latest
      // slot), then every slot up to 12:07, counted by hand.
      const expected: Record<string, number> = {
        health_check: 1 + 24, // 10:05; 10:10 … 12:05
        refresh_materialized_views: 1 + 8, // 10:00; 10:15 … 12:00
        hourly_rollup: 1 + 2, // 10:05; 11:05, 12:05
        daily_rollup: 1, // 01:00
        cleanup_old_data: 1, // 03:00
        weekly_rollup: 1, // Monday 2026-11-23 02:00
        monthly_rollup: 1, // 2026-11-01 04:00
      };
      const scheduled = Object.values(taskRegistry).filter((t) => t.schedule !== undefined);
      expect(scheduled.map((t) => t.name).sort()).toEqual(Object.keys(expected).sort());
      for (const [task, n] of Object.entries(expected)) {
        expect(await runsOf(db, task), task).toHaveLength(n);
      }
      const expectedTotal = Object.values(expected).reduce((a, b) => a + b, 0);
      const counts = await runtime.broker.counts();
      expect((counts.aggregation?.waiting ?? 0) + (counts.maintenance?.waiting ?? 0)).toBe(expectedTotal);
      // The hourly slots of the two hours, named by their slot.
      expect((await runsOf(db, 'hourly_rollup')).slice(0, 2)).toEqual([
        'hourly_rollup@20261129T100500Z',
        'hourly_rollup@20261129T110500Z',
      ]);
    } finally {
      await Promise.all(beats.map((b) => b.close()));
    }
  });

  it.each([
    ['once', 1],
    ['all', 5],
    ['none', 0],
  ] as const)(
    'after five hours of downtime, catch-up %s enqueues %i hourly slot(s)',
    async (policy, missed) => {
      const c = clock(T0);
      const runtime = await testRuntime(backend, db, { now: c.now });
      const first = startBeat(runtime, { name: 'before', tickMs: 3_600_000, catchup: policy });
      await first.tick();
      await first.close();
      const before = (await runsOf(db, 'hourly_rollup')).length;
      expect(before).toBe(policy === 'none' ? 0 : 1);
      c.advance(5 * 60 * MINUTE + 30 * MINUTE); // 15:37: slots 11:05 … 15:05 were missed
      const second = startBeat(runtime, { name: 'after', tickMs: 3_600_000, catchup: policy });
      try {
        await second.tick();
        expect((await runsOf(db, 'hourly_rollup')).length - before).toBe(missed);
        c.set(new Date('2026-11-29T16:05:10Z')); // on time again
        await second.tick();
        expect((await runsOf(db, 'hourly_rollup')).length - before).toBe(missed + 1);
      } finally {
        await second.close();
      }
    },
  );

  it('re-sends a slot claimed by a beat that died before the broker took its job', async () => {
    const c = clock(T0);
    const runtime = await testRuntime(backend, db, { now: c.now });
    // The ledger row and the run row committed, then the beat died: no job was added.
    await db.pool.query(
      `INSERT INTO aggjobs.beat_slots (task, slot, run_id, created_at)
       VALUES ('hourly_rollup', '2026-11-29T10:05:00Z', 'hourly_rollup@20261129T100500Z', now() - interval '1 minute');
       INSERT INTO aggjobs.task_runs (id, task, state, queue) VALUES ('hourly_rollup@20261129T100500Z', 'hourly_rollup', 'queued', 'aggregation')`,
    );
    const beat = startBeat(runtime, { name: 'heir', tickMs: 3_600_000, catchup: 'once' });
    try {
      await beat.tick();
      expect(await runsOf(db, 'hourly_rollup')).toEqual(['hourly_rollup@20261129T100500Z']);
      const job = await runtime.broker.queue('aggregation').getJob('hourly_rollup@20261129T100500Z');
      expect(job?.name).toBe('hourly_rollup');
      const { rows } = await db.pool.query('SELECT enqueued FROM aggjobs.beat_slots WHERE task = $1', [
        'hourly_rollup',
      ]);
      expect(rows).toEqual([{ enqueued: true }]);
    } finally {
      await beat.close();
    }
  });

  it('records as enqueued a slot whose beat died after the broker took its job', async () => {
    const c = clock(T0);
    const runtime = await testRuntime(backend, db, { now: c.now });
    // The job was added and a worker ran it, but the beat was killed before it set `enqueued`.
    await db.pool.query(
      `INSERT INTO aggjobs.beat_slots (task, slot, run_id, created_at)
       VALUES ('hourly_rollup', '2026-11-29T10:05:00Z', 'hourly_rollup@20261129T100500Z', now() - interval '1 minute');
       INSERT INTO aggjobs.task_runs (id, task, state, queue, attempts)
       VALUES ('hourly_rollup@20261129T100500Z', 'hourly_rollup', 'succeeded', 'aggregation', 1)`,
    );
    const beat = startBeat(runtime, { name: 'heir', tickMs: 3_600_000, catchup: 'once' });
    try {
      await beat.tick();
      const { rows } = await db.pool.query('SELECT enqueued FROM aggjobs.beat_slots WHERE task = $1', [
        'hourly_rollup',
      ]);
      expect(rows).toEqual([{ enqueued: true }]);
      // Recorded, not sent again: the run already ran.
      expect(await runtime.broker.queue('aggregation').getJob('hourly_rollup@20261129T100500Z')).toBeFalsy();
    } finally {
      await beat.close();
    }
  });

  it('honours the feature flags and tells the next run times', async () => {
    const c = clock(T0);
    const runtime = await testRuntime(backend, db, {
      now: c.now,
      env: { HOURLY_ROLLUP_ENABLED: 'false', ANALYTICS_TIMEZONE: 'Europe/Berlin' },
    });
    const beat = startBeat(runtime, { name: 'flags', tickMs: 3_600_000 });
    try {
      await beat.tick();
      expect(await runsOf(db, 'hourly_rollup')).toEqual([]);
      expect(await runsOf(db, 'daily_rollup')).toHaveLength(1);
      const next = nextRunTimes(runtime.tasks, runtime.settings, c.now());
      expect(next.find((n) => n.task === 'hourly_rollup')?.nextRunAt).toBeUndefined();
      // Daily at 01:00 Berlin (UTC+1 in winter) is 00:00 UTC.
      expect(next.find((n) => n.task === 'daily_rollup')?.nextRunAt?.toISOString()).toBe(
        '2026-11-30T00:00:00.000Z',
      );
      const schedules = await listSchedules(db.pool, runtime.tasks, runtime.settings, c.now());
      expect(schedules.find((s) => s.task === 'daily_rollup')).toMatchObject({
        enabled: true,
        timezone: 'Europe/Berlin',
        lastRun: { state: 'queued' },
      });
    } finally {
      await beat.close();
    }
  });

  it('a standby takes over within seconds when the active beat is killed', async () => {
    const runtime = await testRuntime(backend, db);
    const control = createControl(runtime);
    const child = spawn(process.execPath, [cliEntry, 'beat'], {
      env: {
        ...process.env,
        DATABASE_URL: db.url,
        ...(backend === 'redis' ? { REDIS_URL: testRedisUrl } : { REDIS_URL: '', CELERY_BROKER_URL: '' }),
        BROKER_KEY_PREFIX: runtime.broker.namespace,
        BEAT_LEASE_SECONDS: '2',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => void (stderr += chunk.toString()));
    let standby: BeatHandle | undefined;
    try {
      const leader = await eventually(async () => (await control.beat())?.holder, 30_000).catch(
        (error: unknown) => {
          throw new Error(`the beat process never led; its stderr:\n${stderr}`, { cause: error });
        },
      );
      expect(leader).toMatch(new RegExp(`^beat-${child.pid}@`));
      standby = startBeat(runtime, { name: 'standby', tickMs: 200, leaseSeconds: 2 });
      await standby.tick();
      expect(standby.isLeader()).toBe(false);
      child.kill('SIGKILL');
      await eventually(async () => standby?.isLeader(), 10_000);
      expect((await control.beat())?.holder).toBe('standby');
    } finally {
      child.kill('SIGKILL');
      await standby?.close();
    }
  });
});
