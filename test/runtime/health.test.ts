import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configureRuntime, healthCheckTask, hourlyRollupTask } from '../../src/index.ts';
import { startWorker, type Runtime, type WorkerHandle } from '../../src/runtime/index.ts';
import type { HealthReport } from '../../src/tasks/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { backends, testRedisUrl, testRuntime, workerOptions, type Backend } from './runtime-harness.ts';
import { cliEntry } from '../support/cli-command.ts';

const databases: Record<Backend, TestDatabase> = {
  redis: await createTestDatabase(),
  postgres: await createTestDatabase(),
};
const resultBackendUrl = `${testRedisUrl.replace(/\/\d*$/, '')}/2`;

describe.each(backends)('health check and results on %s', (backend) => {
  const db = databases[backend];
  let runtime: Runtime;
  let worker: WorkerHandle;

  beforeAll(async () => {
    runtime = await testRuntime(backend, db, { env: { CELERY_RESULT_BACKEND: resultBackendUrl } });
    worker = await startWorker(runtime, workerOptions({ name: `w-${backend}-health` }));
    configureRuntime(runtime);
  });
  afterAll(async () => {
    await worker?.close();
  });

  it('the seed’s API: applyAsync, get, and the result also in CELERY_RESULT_BACKEND', async () => {
    const handle = await hourlyRollupTask.applyAsync({
      args: [new Date(Date.now() - 3_600_000).toISOString()],
    });
    const result = await handle.get({ timeout: 30 });
    expect(result).toMatchObject({ grain: 'hour', mode: 'window' });
    const redis = new Redis(resultBackendUrl);
    try {
      const stored = JSON.parse((await redis.get(`celery-task-meta-${handle.id}`)) ?? '{}') as Record<
        string,
        unknown
      >;
      expect(stored).toMatchObject({
        task_id: handle.id,
        status: 'SUCCESS',
        result: { grain: 'hour' },
        traceback: null,
        children: [],
      });
      expect(Object.keys(stored).sort()).toEqual([
        'children',
        'date_done',
        'result',
        'status',
        'task_id',
        'traceback',
      ]);
      expect(await redis.ttl(`celery-task-meta-${handle.id}`)).toBeGreaterThan(0);
    } finally {
      redis.disconnect();
    }
  });

  it('reports each check and the worst status, with the lag of an open transaction and anomalies', async () => {
    // A workspace with about 10 executions in this hour of the week, and 100 in the last hour.
    await db.pool.query(
      `INSERT INTO analytics.execution_metrics_hourly (bucket_start, workspace_id, executions_total, executions_failed)
       SELECT date_trunc('hour', now(), 'UTC') - interval '1 hour' - make_interval(weeks => w), 4242, 10 + w % 2, 0
       FROM generate_series(1, 8) w
       UNION ALL SELECT date_trunc('hour', now(), 'UTC') - interval '1 hour', 4242, 100, 0`,
    );
    const open = await db.pool.connect();
    try {
      await open.query('BEGIN');
      await open.query('SELECT pg_current_xact_id()');
      const { rows } = await open.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const report = (await (await healthCheckTask.applyAsync()).get({ timeout: 30 })) as HealthReport;
      expect(Object.keys(report.checks).sort()).toEqual([
        'anomalies',
        'broker',
        'change_capture_lag',
        'data_freshness',
        'database',
        'failures',
        'queue_backlog',
        'recent_activity',
        'rollup_identity',
        'run_ownership',
      ]);
      expect(report.checks.database?.status).toBe('healthy');
      expect(report.checks.rollup_identity?.status).toBe('healthy');
      expect(report.checks.broker).toMatchObject({
        status: 'healthy',
        detail: expect.stringContaining(backend),
      });
      // Transaction ids are cluster-wide: the oldest may belong to another database (another test file).
      expect(report.checks.change_capture_lag?.data).toMatchObject({ pid: expect.any(Number) });
      expect(rows[0]?.pid).toEqual(expect.any(Number));
      expect(report.checks.anomalies).toMatchObject({
        status: 'degraded',
        data: [expect.objectContaining({ workspace_id: 4242, executions: 100 })],
      });
      // Daily and coarser rollups have never run in this database.
      expect(report.checks.data_freshness?.status).toBe('degraded');
      expect(report.status).toBe('degraded');
    } finally {
      await open.query('ROLLBACK');
      open.release();
    }
  });

  it('aggjobs health exits 1 when degraded and prints the report as JSON', () => {
    const cli = spawnSync(process.execPath, [cliEntry, 'health', '--json'], {
      env: {
        ...process.env,
        DATABASE_URL: db.url,
        ...(backend === 'redis' ? { REDIS_URL: testRedisUrl } : { REDIS_URL: '', CELERY_BROKER_URL: '' }),
        BROKER_KEY_PREFIX: runtime.broker.namespace,
        LOG_LEVEL: 'silent',
      },
      encoding: 'utf8',
      timeout: 40_000,
    });
    expect(cli.status).toBe(1);
    expect(JSON.parse(cli.stdout)).toMatchObject({
      status: 'degraded',
      checks: { database: { status: 'healthy' } },
    });
  });
});
