import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createTestDatabase } from '../support/database.ts';
import { eventually, testRedisUrl, testRuntime } from '../runtime/runtime-harness.ts';
import { spawnCli } from './cli-process.ts';

/**
 * Per-process connection bound, measured on a real worker process under load, and memory with and
 * without recycling of task threads.
 */
const long = process.env.RELIABILITY_LONG === '1';

describe('database connections of a worker process under load', () => {
  it('its own pool never exceeds DB_POOL_MAX; task threads add at most 4 per running task', async () => {
    const db = await createTestDatabase();
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       SELECT 1 + i % 20, i % 300, i % 7, 'success', now() - make_interval(mins => i % 20000), i % 1000, 1 FROM generate_series(1, 20000) i`,
    );
    const namespace = `{pool${randomBytes(4).toString('hex')}}`;
    const runtime = await testRuntime('redis', db, { namespace });
    const POOL_MAX = 2;
    const CONCURRENCY = 4;
    const worker = spawnCli(['worker', '-c', String(CONCURRENCY), '--hostname', 'w-pool'], {
      DATABASE_URL: db.url,
      REDIS_URL: testRedisUrl,
      BROKER_KEY_PREFIX: namespace,
      DB_POOL_MAX: String(POOL_MAX),
      LOG_LEVEL: 'info',
    });
    const peaks = { process: 0, runSessions: 0, total: 0, samples: 0, other: new Set<string>() };
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const { rows } = await db.pool.query<{ app: string; n: number }>(
          `SELECT application_name AS app, count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND application_name LIKE 'aggjobs %' AND application_name <> 'aggjobs test'
           GROUP BY 1`,
        );
        peaks.samples += 1;
        const own = rows.filter((r) => r.app === 'aggjobs worker').reduce((s, r) => s + r.n, 0);
        const runs = rows.filter((r) => r.app.startsWith('aggjobs run ')).reduce((s, r) => s + r.n, 0);
        for (const r of rows)
          if (r.app !== 'aggjobs worker' && !r.app.startsWith('aggjobs run ')) peaks.other.add(r.app);
        peaks.process = Math.max(peaks.process, own);
        peaks.runSessions = Math.max(peaks.runSessions, runs);
        peaks.total = Math.max(
          peaks.total,
          rows.reduce((s, r) => s + r.n, 0),
        );
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      await worker.waitFor('broker:', 30_000);
      const handles = [];
      for (let round = 0; round < 6; round += 1) {
        for (const task of [
          'hourly_rollup',
          'daily_rollup',
          'refresh_materialized_views',
          'health_check',
        ] as const) {
          handles.push(await runtime.enqueue(task, {}));
        }
        handles.push(await runtime.enqueue('health_check', {}), await runtime.enqueue('weekly_rollup', {}));
      }
      for (const h of handles) await h.get({ timeout: 50 });
    } finally {
      sampling = false;
      await sampler;
      await worker.stop();
    }
    console.log(JSON.stringify({ POOL_MAX, CONCURRENCY, ...peaks, other: [...peaks.other] }));
    expect(peaks.process).toBeGreaterThan(0);
    expect(peaks.process).toBeLessThanOrEqual(POOL_MAX);
    expect(peaks.runSessions).toBeLessThanOrEqual(4 * CONCURRENCY);
    // The documented bound: DB_POOL_MAX + 4 × concurrency + 1 (the control channel's listener).
    expect(peaks.total).toBeLessThanOrEqual(POOL_MAX + 4 * CONCURRENCY + 1);
  }, 120_000);
});

describe('memory of a worker process running many tasks', () => {
  const tasks = long ? 5000 : 300;

  /** VmRSS and VmHWM (peak) of a process, in MiB. */
  function memoryOf(pid: number): { rssMb: number; peakMb: number } {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number =>
      Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
    return { rssMb: Math.round(kb('VmRSS') / 1024), peakMb: Math.round(kb('VmHWM') / 1024) };
  }

  async function runMany(maxTasksPerChild: number): Promise<Record<string, number>> {
    const db = await createTestDatabase();
    const namespace = `{mem${randomBytes(4).toString('hex')}}`;
    const runtime = await testRuntime('redis', db, { namespace });
    const worker = spawnCli(
      [
        'worker',
        '-c',
        '4',
        '-Q',
        'maintenance',
        '--pool',
        'threads',
        '--max-tasks-per-child',
        String(maxTasksPerChild),
      ],
      { DATABASE_URL: db.url, REDIS_URL: testRedisUrl, BROKER_KEY_PREFIX: namespace, LOG_LEVEL: 'warn' },
      long ? 900_000 : 120_000,
    );
    try {
      // Warm up: threads started, connections open.
      for (let i = 0; i < 8; i += 1)
        await (await runtime.enqueue('refresh_materialized_views', {})).get({ timeout: 30 });
      const pid = worker.child.pid ?? 0;
      const before = memoryOf(pid);
      for (let i = 0; i < tasks; i += 100) {
        await Promise.all(
          Array.from({ length: Math.min(100, tasks - i) }, () =>
            runtime.enqueue('refresh_materialized_views', {}),
          ),
        );
      }
      await eventually(
        async () => {
          const { rows } = await db.pool.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM aggjobs.task_runs WHERE state = 'succeeded'`,
          );
          return (rows[0]?.n ?? 0) >= tasks + 8 ? true : undefined;
        },
        long ? 800_000 : 100_000,
      );
      const after = memoryOf(pid);
      await worker.stop();
      // Written by the worker's last heartbeat, at stop.
      const { rows } = await db.pool.query<{ recycled: number }>('SELECT recycled FROM aggjobs.workers');
      return {
        rssBeforeMb: before.rssMb,
        rssAfterMb: after.rssMb,
        peakMb: after.peakMb,
        recycled: rows[0]?.recycled ?? -1,
      };
    } finally {
      await worker.stop();
    }
  }

  it(
    `${tasks} tasks with and without recycling: threads are replaced, RSS recorded${long ? ' (long: RELIABILITY_LONG=1)' : ''}`,
    async () => {
      const without = await runMany(1_000_000);
      const withRecycling = await runMany(25);
      console.log(JSON.stringify({ tasks, without, withRecycling }));
      expect(without.recycled).toBe(0);
      // 4 threads, each replaced after 25 tasks of its own.
      expect(withRecycling.recycled).toBeGreaterThanOrEqual(Math.floor(tasks / 25) - 5);
    },
    long ? 1_800_000 : 200_000,
  );
});
