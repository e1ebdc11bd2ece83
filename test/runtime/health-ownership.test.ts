/**
 * The health report on run ownership: due work nobody serves is unhealthy, runs whose worker
 * stopped long ago are degraded, and a failure that a later run fixed no longer counts.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { HealthReport } from '../../src/tasks/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { healthReport } from '../support/health.ts';

const report = (db: TestDatabase): Promise<HealthReport> => healthReport(db.pool);

async function insertRun(
  db: TestDatabase,
  run: { task: string; state: string; queue: string; args?: object; sql?: string },
): Promise<string> {
  const id = randomUUID();
  await db.pool.query(
    `INSERT INTO aggjobs.task_runs (id, task, args, state, queue) VALUES ($1, $2, $3, $4, $5)`,
    [id, run.task, JSON.stringify(run.args ?? {}), run.state, run.queue],
  );
  if (run.sql !== undefined) await db.pool.query(run.sql, [id]);
  return id;
}

describe('health: run ownership and failures', () => {
  it('due runs on a queue with no live worker are unhealthy; a live worker on it makes them healthy', async () => {
    const db = await createTestDatabase();
    await insertRun(db, {
      task: 'cleanup_old_data',
      state: 'queued',
      queue: 'maintenance',
      sql: `UPDATE aggjobs.task_runs SET state_changed_at = now() - interval '5 minutes',
              not_before = now() - interval '5 minutes' WHERE id = $1`,
    });
    const before = await report(db);
    expect(before.checks.run_ownership).toMatchObject({
      status: 'unhealthy',
      detail: expect.stringContaining('1 run(s) due on maintenance and no live worker serves it'),
    });
    expect(before.status).toBe('unhealthy');
    // A worker on the other queue only does not serve it.
    await db.pool.query(
      `INSERT INTO aggjobs.workers (name, host, pid, queues, concurrency) VALUES ('w1', 'h', 1, '{aggregation}', 1)`,
    );
    expect((await report(db)).checks.run_ownership?.status).toBe('unhealthy');
    await db.pool.query(`UPDATE aggjobs.workers SET queues = '{aggregation,maintenance}'`);
    expect((await report(db)).checks.run_ownership?.status).toBe('healthy');
    // A run delayed into the future is not due.
    await db.pool.query(`UPDATE aggjobs.workers SET stopped_at = now()`);
    await db.pool.query(`UPDATE aggjobs.task_runs SET not_before = now() + interval '1 hour'`);
    expect((await report(db)).checks.run_ownership?.status).toBe('healthy');
  });

  it('without a broker (an eager run) the broker and its backlog are left out, not reported healthy', async () => {
    const db = await createTestDatabase();
    const checks = (await report(db)).checks;
    expect(checks.broker).toBeUndefined();
    expect(checks.queue_backlog).toBeUndefined();
    expect(checks.database?.status).toBe('healthy');
  });

  it('a running run whose lease expired long ago is degraded (stuck)', async () => {
    const db = await createTestDatabase();
    await db.pool.query(
      `INSERT INTO aggjobs.workers (name, host, pid, queues, concurrency) VALUES ('w1', 'h', 1, '{aggregation}', 1)`,
    );
    await insertRun(db, {
      task: 'hourly_rollup',
      state: 'running',
      queue: 'aggregation',
      sql: `UPDATE aggjobs.task_runs SET lease_token = 't', lease_expires_at = now() - interval '10 minutes' WHERE id = $1`,
    });
    expect((await report(db)).checks.run_ownership).toMatchObject({
      status: 'degraded',
      detail: expect.stringContaining('1 running run(s) whose worker stopped'),
    });
  });

  it('a failure that a later run of the same task and arguments fixed no longer degrades health', async () => {
    const db = await createTestDatabase();
    const failedAt = `UPDATE aggjobs.task_runs SET finished_at = now() - interval '10 minutes' WHERE id = $1`;
    await insertRun(db, { task: 'hourly_rollup', state: 'failed', queue: 'aggregation', sql: failedAt });
    await insertRun(db, {
      task: 'daily_rollup',
      state: 'failed',
      queue: 'aggregation',
      args: { target_date: '2026-11-01' },
      sql: failedAt,
    });
    expect((await report(db)).checks.failures).toMatchObject({
      status: 'degraded',
      data: { hourly_rollup: 1, daily_rollup: 1 },
    });
    const succeeded = `UPDATE aggjobs.task_runs SET finished_at = now() WHERE id = $1`;
    await insertRun(db, { task: 'hourly_rollup', state: 'succeeded', queue: 'aggregation', sql: succeeded });
    // Another argument does not fix it.
    await insertRun(db, {
      task: 'daily_rollup',
      state: 'succeeded',
      queue: 'aggregation',
      args: { target_date: '2026-11-02' },
      sql: succeeded,
    });
    expect((await report(db)).checks.failures).toMatchObject({
      status: 'degraded',
      data: { daily_rollup: 1 },
    });
  });
});
