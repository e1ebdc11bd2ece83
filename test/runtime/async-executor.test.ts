/**
 * The async pool (`executor: 'async'`): tasks in the worker's event loop, with the same outcomes as
 * in a task thread — a soft limit fires the signal, a hard limit ends the run at once and kills its
 * sessions, so a statement stuck in PostgreSQL does not outlive it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSettings } from '../../src/config/index.ts';
import { TaskThreadPool, type RunHandle } from '../../src/runtime/thread-pool.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { testTaskModules } from './runtime-harness.ts';

const db: TestDatabase = await createTestDatabase();
const pool = new TaskThreadPool({
  init: {
    settings: parseSettings({ LOG_LEVEL: 'silent' }),
    databaseUrl: db.url,
    taskModules: testTaskModules,
    workerName: 'async-test',
    brokerKind: 'redis',
  },
  pool: db.pool,
  broker: { kind: 'redis', ping: async () => 0, counts: async () => ({}) },
  maxTasksPerThread: 1000,
  maxMemoryKb: 0,
  executor: 'async',
});
afterAll(async () => {
  await pool.close();
});
// Each run's row as its worker's claim leaves it (attempt 1 running): a run's sessions are given
// only to the attempt that owns it (run-session-pool.ts).
beforeAll(async () => {
  await db.pool.query(
    `INSERT INTO aggjobs.task_runs (id, task, state, queue, attempts)
     SELECT id, 'test_sleep', 'running', 'maintenance', 1 FROM unnest($1::text[]) AS id`,
    [['a-ok', 'a-lines-1', 'a-lines-2', 'a-lines-3', 'a-soft', 'a-hard', 'a-restart', 'a-other', 'a-victim']],
  );
});

const run = (task: string, args: Record<string, unknown>, runId: string) => ({
  type: 'run' as const,
  runId,
  task,
  args,
  attempt: 1,
});

const sessionsOf = async (runId: string): Promise<number> => {
  const { rows } = await db.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1`,
    [`aggjobs run ${runId} #1`],
  );
  return rows[0]?.n ?? 0;
};

describe('async executor', () => {
  it('runs a task in the event loop, without a thread, and keeps its log lines', async () => {
    const outcome = await pool.run(run('test_sleep', { ms: 10 }, 'a-ok'), { softMs: 5000, hardMs: 10_000 });
    expect(outcome).toMatchObject({ kind: 'done', outcome: { ok: true, result: { threadId: 0 } } });
    expect(outcome.kind === 'done' && outcome.logs.map((l) => l.msg)).toContain('task test_sleep started');
    expect(pool.threads).toBe(0);
  });

  it('runs at the same time keep only their own log lines', async () => {
    const outcomes = await Promise.all(
      ['a-lines-1', 'a-lines-2', 'a-lines-3'].map((id, i) =>
        pool.run(run('test_sleep', { ms: 30 * (3 - i) }, id), { softMs: 5000, hardMs: 10_000 }),
      ),
    );
    for (const outcome of outcomes) {
      expect(outcome.kind).toBe('done');
      const lines = outcome.kind === 'done' ? outcome.logs.map((l) => l.msg) : [];
      expect(lines).toEqual(['task test_sleep started', 'task test_sleep succeeded']);
    }
  });

  it('soft limit: the signal fires and the task stops', async () => {
    const outcome = await pool.run(run('test_polite_sleep', { seconds: 60 }, 'a-soft'), {
      softMs: 300,
      hardMs: 20_000,
    });
    expect(outcome).toMatchObject({ kind: 'done', softLimitHit: true, outcome: { ok: false } });
  });

  it('hard limit: a statement stuck in PostgreSQL is killed with its session, the run ends at once', async () => {
    const started = Date.now();
    const outcome = await pool.run(run('test_sql_sleep', {}, 'a-hard'), { softMs: 200, hardMs: 500 });
    expect(outcome).toMatchObject({ kind: 'killed', reason: 'hard_limit', softLimitHit: true });
    expect(Date.now() - started).toBeLessThan(5000);
    await expect.poll(() => sessionsOf('a-hard'), { timeout: 5000 }).toBe(0);
  });

  it('pool restart during a run: that run keeps its sessions, and they close when it ends', async () => {
    const running = pool.run(run('test_polite_sleep', { seconds: 0.5 }, 'a-restart'), {
      softMs: 5000,
      hardMs: 10_000,
    });
    const deadline = Date.now() + 5000;
    while ((await sessionsOf('a-restart')) === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    pool.restart();
    expect(await running).toMatchObject({ kind: 'done', outcome: { ok: true } });
    // Not kept for the next run (an idle pool keeps its sessions 30 s): closed at the run's end.
    const closedBy = Date.now() + 5000;
    while ((await sessionsOf('a-restart')) > 0 && Date.now() < closedBy) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await sessionsOf('a-restart')).toBe(0);
  });

  it('terminate: the handle kills the run and only its sessions', async () => {
    let handle: RunHandle | undefined;
    const other = pool.run(run('test_polite_sleep', { seconds: 3 }, 'a-other'), {
      softMs: 20_000,
      hardMs: 20_000,
    });
    const victim = pool.run(
      run('test_sql_sleep', {}, 'a-victim'),
      { softMs: 20_000, hardMs: 20_000 },
      (h) => {
        handle = h;
      },
    );
    await expect.poll(() => sessionsOf('a-victim'), { timeout: 5000 }).toBe(1);
    handle?.kill('terminated');
    expect(await victim).toMatchObject({ kind: 'killed', reason: 'terminated' });
    await expect.poll(() => sessionsOf('a-victim'), { timeout: 5000 }).toBe(0);
    expect(await other).toMatchObject({ kind: 'done', outcome: { ok: true, result: { slept: 3 } } });
  });
});
