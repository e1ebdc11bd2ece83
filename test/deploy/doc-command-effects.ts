/**
 * What each one-shot `aggjobs …` line of README.md and docs/*.md promises, checked after running it
 * as written (test/deploy/readme-commands.test.ts): the exit code, and the effect the page describes
 * read back from the database, the broker or the output, with expectations computed apart from the
 * code under test (migration files hashed here, rollups compared with the plain GROUP BY oracle,
 * cron slots from test/support/cron-oracle.ts, hours and dates from the clock).
 *
 * Steps run in the order listed, on one database that `aggjobs migrate` built, with a worker running
 * (`aggjobs worker --concurrency 2`). A documented line with no step here, or a step for a line no
 * page has, fails the test.
 */
import { expect } from 'vitest';
import { isSlot, latestSlotAtOrBefore } from '../support/cron-oracle.ts';
import {
  backfill,
  dbPsql,
  dbUrl,
  demoSeed,
  demoTraffic,
  migrateStatus,
  rebuild,
  runEager,
  runHourly,
  runHourlyTargetHour,
  runHourlyWait,
} from './doc-command-data-steps.ts';
import {
  DAY,
  count,
  finishedRun,
  hourly,
  json,
  ok,
  runRow,
  until,
  zone,
  type Step,
} from './doc-command-support.ts';

export { migrate } from './doc-command-data-steps.ts';
export type { Finished, StepContext } from './doc-command-support.ts';
/**
 * A run stuck behind a lock the test holds on a rollup table: `control terminate` ends it (revoked,
 * its waiting session gone, the lock's waiter with it); the change it was folding in is not lost:
 * the next step's rollup folds it in (compared with the oracle there).
 */
const controlTerminate: Step = async ({ pool, run, sh }) => {
  await pool.query(
    `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
     VALUES (424242, 1, 1, 'success', now() - interval '10 minutes', 10, 1)`,
  );
  const holder = await pool.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE analytics.execution_metrics_hourly IN ACCESS EXCLUSIVE MODE');
    const holderPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    const enqueued = await sh('aggjobs run hourly_rollup');
    ok(enqueued, 'aggjobs run hourly_rollup');
    const stuck = json<{ runId: string }>(enqueued).runId;
    // Its session (named for the run) waits on the test's lock.
    const waiting = async (): Promise<number> =>
      count(
        pool,
        'pg_stat_activity',
        `application_name LIKE ${`'aggjobs run ${stuck}%'`} AND ${holderPid} = ANY (pg_blocking_pids(pid))`,
      );
    await until('the run waits on the lock', async () => ((await waiting()) === 1 ? true : undefined));
    expect((await runRow(pool, stuck))?.state).toBe('running');

    const result = await run({ runId: stuck });
    ok(result, 'aggjobs control terminate');
    expect(json<{ runId: string; action: string }>(result)).toMatchObject({
      runId: stuck,
      action: 'terminating',
    });
    const ended = await finishedRun(pool, stuck);
    expect(ended.state).toBe('revoked');
    expect(await waiting()).toBe(0);
    // Still inside the test's lock: nothing of the run reached the table.
    expect(
      (await holder.query('SELECT 1 FROM analytics.execution_metrics_hourly WHERE workspace_id = 424242'))
        .rows,
    ).toEqual([]);
  } finally {
    await holder.query('ROLLBACK');
    holder.release();
  }
};

/** The first slot strictly after `t`, minute by minute (test/support/cron-oracle.ts). */
function nextSlot(cron: string, t: Date): string | undefined {
  for (let m = Math.floor(t.getTime() / 60_000) * 60_000 + 60_000; m < t.getTime() + 40 * DAY; m += 60_000) {
    if (isSlot(cron, new Date(m), zone)) return new Date(m).toISOString();
  }
  return undefined;
}

/** The next time of each schedule: the first slot after now. */
const beatNext: Step = async ({ run, schedules }) => {
  const from = new Date();
  const result = await run();
  const to = new Date();
  ok(result, 'aggjobs beat --next');
  const lines = result.stdout
    .trim()
    .split('\n')
    .map((l) => l.split(/\s+/));
  expect(lines.map(([task]) => task).sort()).toEqual(schedules.map((s) => s.task).sort());
  for (const { task, cron } of schedules) {
    const printed = lines.find(([t]) => t === task)?.[1];
    expect([nextSlot(cron, from), nextSlot(cron, to)], task).toContain(printed);
  }
};

interface Status {
  queues: Array<{ queue: string; paused: boolean }>;
  workers: Array<{ pid: number; online: boolean; queues: string[]; concurrency: number }>;
  schedules: Array<{ task: string; cron: string; enabled: boolean; dueSlot: string | null }>;
  beat: unknown;
}

/** Queues, the running worker (by its process id), every schedule with its due slot. */
const controlStatus: Step = async ({ run, schedules, workerPid }) => {
  const from = new Date();
  const result = await run();
  const to = new Date();
  ok(result, 'aggjobs control status');
  const status = json<Status>(result);
  expect(status.queues.map((q) => [q.queue, q.paused])).toEqual([
    ['aggregation', false],
    ['maintenance', false],
  ]);
  expect(status.workers.find((w) => w.pid === workerPid)).toMatchObject({
    online: true,
    queues: ['aggregation', 'maintenance'],
    concurrency: 2,
  });
  expect(status.schedules.map((s) => [s.task, s.cron]).sort()).toEqual(
    schedules.map((s) => [s.task, s.cron]).sort(),
  );
  for (const s of status.schedules) {
    const due = [from, to].map((t) => latestSlotAtOrBefore(s.cron, t, zone)?.toISOString() ?? null);
    expect(due, s.task).toContain(s.dueSlot);
  }
};

const exitCodes: Record<string, number> = { healthy: 0, degraded: 1, unhealthy: 2 };

/** Degraded by the failed run of the last hour (inserted by the test), exit 1; one line per check. */
const health: Step = async ({ run }) => {
  const result = await run();
  const [status, ...checks] = result.stdout.trim().split('\n');
  expect(status).toBe('degraded');
  expect(result.code).toBe(exitCodes.degraded);
  const byName = new Map(checks.map((l) => l.trim().split(/\s+/)).map(([s, name]) => [name, s]));
  expect(byName.get('database')).toBe('healthy');
  expect(byName.get('broker')).toBe('healthy');
  expect(byName.get('failures')).toBe('degraded');
};

const healthJson: Step = async ({ run, failedRunId, pool }) => {
  const result = await run();
  const report = json<{
    status: string;
    checks: Record<string, { status: string; detail: string; data: unknown }>;
  }>(result);
  expect(result.code).toBe(exitCodes[report.status]);
  const task = (await runRow(pool, failedRunId))?.task ?? '';
  expect(report.checks.failures).toMatchObject({ status: 'degraded', data: { [task]: 1 } });
  expect(report.checks.database?.status).toBe('healthy');
  expect(report.checks.change_capture_lag?.status).toBe('healthy');
};

interface ListedRun {
  id: string;
  task: string;
  state: string;
  result: unknown;
}

/** The newest 20 runs: none left out is newer than one listed. */
const controlRuns: Step = async ({ pool, run }) => {
  // Older runs past the first 20 (a day apart), to be left out.
  await pool.query(
    `INSERT INTO aggjobs.task_runs (id, task, args, state, queue, attempts, enqueued_at, finished_at)
     SELECT 'old-' || i, 'health_check', '{}', 'succeeded', 'maintenance', 1, now() - i * interval '1 day', now() - i * interval '1 day'
     FROM generate_series(1, 25) i`,
  );
  const result = await run();
  ok(result, 'aggjobs control runs');
  const listed = json<ListedRun[]>(result);
  const { rows } = await pool.query<{ id: string; at: Date }>(
    'SELECT id, enqueued_at AS at FROM aggjobs.task_runs',
  );
  expect(listed).toHaveLength(Math.min(20, rows.length));
  expect(rows.length).toBeGreaterThan(20);
  const ids = new Set(listed.map((r) => r.id));
  const times = (inList: boolean): number[] =>
    rows.filter((r) => ids.has(r.id) === inList).map((r) => r.at.getTime());
  expect(times(true)).toHaveLength(listed.length);
  expect(Math.min(...times(true))).toBeGreaterThanOrEqual(Math.max(...times(false)));
  // Newest first.
  const order = listed.map((r) => rows.find((x) => x.id === r.id)?.at.getTime() ?? 0);
  expect(order).toEqual([...order].sort((a, b) => b - a));
};

/** Every hourly_rollup run (fewer than 20 here), each succeeded one with what each refresh did. */
const controlRunsTask: Step = async ({ pool, run }) => {
  const result = await run();
  ok(result, 'aggjobs control runs --task hourly_rollup');
  const listed = json<ListedRun[]>(result);
  const { rows } = await pool.query<{ id: string }>(
    "SELECT id FROM aggjobs.task_runs WHERE task = 'hourly_rollup' ORDER BY enqueued_at DESC",
  );
  expect(rows.length).toBeGreaterThan(0);
  expect(rows.length).toBeLessThan(20);
  expect(listed.map((r) => r.id)).toEqual(rows.map((r) => r.id));
  const succeeded = listed.filter((r) => r.state === 'succeeded');
  expect(succeeded.length).toBeGreaterThan(0);
  for (const r of succeeded) {
    const rollups = (r.result as { rollups: Array<Record<string, unknown>> }).rollups;
    expect(rollups.map((x) => x.rollup)).toEqual(hourly);
    for (const x of rollups)
      expect(Object.keys(x)).toEqual(
        expect.arrayContaining(['groupsRecomputed', 'rowsWritten', 'durationMs']),
      );
  }
};

const controlRunsFailed: Step = async ({ pool, run, failedRunId }) => {
  const result = await run();
  ok(result, 'aggjobs control runs --state failed');
  const listed = json<ListedRun[]>(result);
  const { rows } = await pool.query<{ id: string }>(
    "SELECT id FROM aggjobs.task_runs WHERE state = 'failed' ORDER BY enqueued_at DESC",
  );
  expect(listed.map((r) => r.id)).toEqual(rows.map((r) => r.id));
  expect(listed.map((r) => r.id)).toContain(failedRunId);
};

/** A new run of the same task and arguments, retry_of the failed one, run by the worker. */
const controlRetry: Step = async ({ pool, run, failedRunId }) => {
  const failed = await runRow(pool, failedRunId);
  const result = await run({ runId: failedRunId });
  ok(result, 'aggjobs control retry');
  const { runId } = json<{ runId: string }>(result);
  expect(runId).not.toBe(failedRunId);
  const retry = await finishedRun(pool, runId);
  expect(retry).toMatchObject({
    task: failed?.task,
    args: failed?.args,
    retry_of: failedRunId,
    state: 'succeeded',
  });
  expect((await runRow(pool, failedRunId))?.state).toBe('failed');
};

/**
 * Every documented one-shot line and what it must do, in the order they run. The line is the key as
 * it appears on the page (trailing comment dropped, `npx ` too).
 */
export const oneShotSteps: ReadonlyArray<readonly [string, Step]> = [
  ['aggjobs migrate --status', migrateStatus],
  ['aggjobs db url', dbUrl],
  [
    'aggjobs demo seed --days 30 --executions-per-day 100000 --workspaces 1000 --users 20000 --seed 1',
    demoSeed,
  ],
  ['aggjobs demo traffic --rate 50 --duration 60', demoTraffic],
  ['aggjobs control terminate <runId>', controlTerminate],
  ['aggjobs run hourly_rollup --wait', runHourlyWait],
  ['aggjobs run hourly_rollup', runHourly],
  [
    "aggjobs run hourly_rollup --arg target_hour=$(date -u -d '2 hours ago' +%Y-%m-%dT%H:00:00) --wait",
    runHourlyTargetHour,
  ],
  ['aggjobs run health_check --eager', runEager],
  [
    "aggjobs backfill --start $(date -u -d '2 days ago' +%F) --end $(date -u +%F) --granularity hourly --wait",
    backfill,
  ],
  ['aggjobs rollups rebuild --rollup execution_metrics_daily', rebuild],
  ["aggjobs db psql -c 'SELECT count(*) FROM analytics.execution_metrics_daily'", dbPsql],
  ['aggjobs beat --next', beatNext],
  ['aggjobs control status', controlStatus],
  ['aggjobs health', health],
  ['aggjobs health --json', healthJson],
  ['aggjobs control runs', controlRuns],
  ['aggjobs control runs --task hourly_rollup', controlRunsTask],
  ['aggjobs control runs --state failed', controlRunsFailed],
  ['aggjobs control retry <runId>', controlRetry],
];
