import { randomBytes } from 'node:crypto';
import { afterAll } from 'vitest';
import { parseSettings, type Settings } from '../../src/config/index.ts';
import { createLogger } from '../../src/log/index.ts';
import { createRuntime, startWorker, type Runtime, type WorkerHandle } from '../../src/runtime/index.ts';
import { createDashboardApp, type DashboardAuthSettings, type DashboardDeps } from '../../src/web/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { testRedisUrl } from '../support/redis-url.ts';
import { FLAKY_TABLE } from './fixtures/web-tasks.ts';

export type Backend = 'redis' | 'postgres';
/** The Redis of the run (see test/support/redis-url.ts). */
export { testRedisUrl };
const taskModules = [new URL('./fixtures/web-tasks.ts', import.meta.url).href];

export type WebSettings = Settings & DashboardAuthSettings;

export interface WebHarness {
  db: TestDatabase;
  runtime: Runtime;
  settings: WebSettings;
  app: ReturnType<typeof createDashboardApp>;
  /** What createDashboardApp/startDashboard were given. */
  deps: DashboardDeps;
  /** A worker on both queues (started on demand, stopped after the file). */
  startWorker(name?: string): Promise<WorkerHandle>;
}

export function webSettings(
  backend: Backend,
  env: Record<string, string> = {},
  extra: Partial<DashboardAuthSettings> = {},
): WebSettings {
  return {
    ...parseSettings({
      ...(backend === 'redis' ? { REDIS_URL: testRedisUrl } : {}),
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      ...env,
    }),
    ...extra,
  };
}

/**
 * A cloned database, a runtime on its own broker namespace (unique Redis prefix or PostgreSQL
 * schema) with the dashboard's test tasks, and the dashboard app, all closed after the file.
 */
export async function webHarness(
  backend: Backend,
  options: {
    env?: Record<string, string>;
    auth?: Partial<DashboardAuthSettings>;
    /** Settings only the dashboard sees (e.g. a broker URL with a password, to check it is scrubbed). */
    dashboardOnly?: Partial<WebSettings>;
  } = {},
): Promise<WebHarness> {
  const db = await createTestDatabase();
  await db.pool.query(`CREATE TABLE IF NOT EXISTS ${FLAKY_TABLE} (key text PRIMARY KEY)`);
  const settings = webSettings(backend, options.env, options.auth);
  const logger = createLogger(settings.logLevel);
  const namespace =
    backend === 'redis'
      ? `{w${randomBytes(5).toString('hex')}}`
      : `bullmq_w${randomBytes(5).toString('hex')}`;
  const runtime = await createRuntime({
    settings,
    pool: db.pool,
    databaseUrl: db.url,
    logger,
    namespace,
    taskModules,
  });
  const workers: WorkerHandle[] = [];
  afterAll(async () => {
    for (const w of workers) await w.close();
    await runtime.close();
  });
  const deps: DashboardDeps = {
    pool: db.pool,
    settings: { ...settings, ...options.dashboardOnly },
    runtime,
    logger,
  };
  const app = createDashboardApp(deps);
  return {
    db,
    runtime,
    settings,
    app,
    deps,
    async startWorker(name) {
      const worker = await startWorker(runtime, {
        ...(name === undefined ? {} : { name }),
        queues: ['aggregation', 'maintenance'],
        concurrency: 2,
        maxTasksPerChild: 1000,
        maxMemoryPerChildKb: 0,
        shutdownGraceSeconds: 2,
        heartbeatSeconds: 1,
      });
      workers.push(worker);
      return worker;
    },
  };
}

export async function eventually<T>(
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
