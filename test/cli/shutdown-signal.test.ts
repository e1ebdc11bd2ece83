import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createTestDatabase } from '../support/database.ts';
import { spawnCli } from '../reliability/cli-process.ts';
import { runCli } from './cli-runner.ts';

const db = await createTestDatabase();
const env = {
  DATABASE_URL: db.url,
  REDIS_URL: '',
  CELERY_BROKER_URL: '',
  BROKER_KEY_PREFIX: `{s${randomBytes(4).toString('hex')}}`,
  LOG_LEVEL: 'info',
  WORKER_SHUTDOWN_GRACE: '30',
  ROLLUP_LOCK_TIMEOUT_MS: '60000',
};

describe('Ctrl-C while a task runs', () => {
  it('says what it waits for, and a second one aborts the task (session killed, run retrying) and stops', async () => {
    // Another session holds the hourly rollup's lock: the task waits on it, running.
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    await holder.query(
      "SELECT pg_advisory_lock(hashtext('aggjobs.rollup'), hashtext('execution_metrics_hourly'))",
    );
    const worker = spawnCli(['worker', '-c', '1', '-Q', 'aggregation'], env, 90_000);
    try {
      await worker.waitFor(/worker \S+ ready/);
      const enqueued = await runCli(['run', 'hourly_rollup'], env);
      expect(enqueued.status, enqueued.stderr).toBe(0);
      const runId = (JSON.parse(enqueued.stdout) as { runId: string }).runId;
      for (let i = 0; ; i++) {
        const { rows } = await db.pool.query('SELECT state FROM aggjobs.task_runs WHERE id = $1', [runId]);
        if (rows[0]?.state === 'running') break;
        if (i > 150) throw new Error(`run ${runId} never ran:\n${worker.output()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      worker.child.kill('SIGINT');
      await worker.waitFor(
        'SIGINT: stopping the worker; waiting up to 30 s (WORKER_SHUTDOWN_GRACE) for 1 running task(s) to finish, then they are aborted. Ctrl-C again to stop now',
      );
      const second = Date.now();
      worker.child.kill('SIGINT');
      expect(await worker.exited).toBe(130);
      // Well before the 30 s grace (a bound, not a measurement: the stop takes well under a second).
      expect(Date.now() - second).toBeLessThan(15_000);
      expect(worker.output()).toContain('second signal: stopping now');
      // The task was aborted as at the end of the grace: its session killed (its SQL cancelled, its
      // transaction rolled back), the run recorded as going back to the queue, nothing committed.
      const { rows } = await db.pool.query('SELECT state, error FROM aggjobs.task_runs WHERE id = $1', [
        runId,
      ]);
      expect(rows[0]).toEqual({ state: 'retrying', error: 'the worker shut down while it ran' });
      const { rows: sessions } = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE $1`,
        [`aggjobs run ${runId} #%`],
      );
      expect(sessions[0]?.n).toBe(0);
    } finally {
      await worker.stop('SIGKILL');
      await holder.end();
    }
  });
});
