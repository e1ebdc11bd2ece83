import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { parseSettings, type Settings } from '../../src/config/index.ts';
import { createLogger } from '../../src/log/index.ts';
import { createRuntime, type Runtime, type WorkerOptions } from '../../src/runtime/index.ts';
import type { TestDatabase } from '../support/database.ts';
import { testRedisUrl } from '../support/redis-url.ts';

export type Backend = 'redis' | 'postgres';
export const backends: Backend[] = ['redis', 'postgres'];

/** The Redis of the run (see test/support/redis-url.ts). */
export { testRedisUrl };

export const testTaskModules = [new URL('./fixtures/test-tasks.ts', import.meta.url).href];

export function testSettings(backend: Backend, env: Record<string, string> = {}): Settings {
  return parseSettings({
    ...(backend === 'redis' ? { REDIS_URL: testRedisUrl } : {}),
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    TASK_RETRY_BACKOFF_MS: '50',
    // A day a backfill window, so a few days hold several; unset, windows are sized by rows and a
    // test's few rows make one window (BACKFILL_WINDOW_DAYS: '' gives that default).
    BACKFILL_WINDOW_DAYS: '1',
    ...env,
  });
}

/**
 * A runtime on `backend` with its own namespace (a unique Redis key prefix, or a unique PostgreSQL
 * schema of the BullMQ backend), so test files and tests never see each other's jobs. Closed after
 * the file.
 */
export async function testRuntime(
  backend: Backend,
  db: TestDatabase,
  options: {
    env?: Record<string, string>;
    namespace?: string;
    now?: () => Date;
    /** More task modules besides the test tasks. */
    taskModules?: readonly string[];
  } = {},
): Promise<Runtime> {
  const settings = testSettings(backend, options.env);
  const namespace =
    options.namespace ??
    (backend === 'redis'
      ? `{t${randomBytes(5).toString('hex')}}`
      : `bullmq_t${randomBytes(5).toString('hex')}`);
  const runtime = await createRuntime({
    settings,
    pool: db.pool,
    databaseUrl: db.url,
    logger: createLogger(settings.logLevel),
    namespace,
    taskModules: [...testTaskModules, ...(options.taskModules ?? [])],
    now: options.now,
  });
  afterAll(async () => {
    await runtime.close();
    // Leave nothing behind in the shared Redis: every key of this runtime's namespace.
    if (backend === 'redis') await dropRedisNamespaces([namespace]);
  });
  return runtime;
}

export function workerOptions(overrides: Partial<WorkerOptions> = {}): WorkerOptions {
  return {
    queues: ['aggregation', 'maintenance'],
    concurrency: 2,
    maxTasksPerChild: 1000,
    maxMemoryPerChildKb: 0,
    shutdownGraceSeconds: 5,
    heartbeatSeconds: 1,
    ...overrides,
  };
}

export async function eventually<T>(fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Deletes every Redis key under the given prefixes (namespaces used by child processes). */
export async function dropRedisNamespaces(prefixes: readonly string[]): Promise<void> {
  if (prefixes.length === 0) return;
  const redis = new Redis(testRedisUrl);
  try {
    for (const prefix of prefixes) {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
    }
  } finally {
    redis.disconnect();
  }
}
