import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { parseSettings } from '../src/config/index.ts';
import type { Pool } from '../src/db/index.ts';
import { createLogger } from '../src/log/index.ts';
import { createRuntime, type Runtime, type WorkerOptions } from '../src/runtime/index.ts';

export type Backend = 'redis' | 'postgres';
export const backends: readonly Backend[] = ['redis', 'postgres'];
export const backendName: Record<Backend, string> = { redis: 'Redis', postgres: 'PostgreSQL' };

/** The Redis broker of the benchmark: BENCH_REDIS_URL or the local one. */
export const benchRedisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** The bench-only tasks (bench_noop, bench_statement, bench_scheduled_noop), through the runtime's `taskModules` seam. */
export const benchTaskModules = [new URL('./bench-tasks.mjs', import.meta.url).href];

/** A bench database: its pool (aggjobs.task_runs lives there) and URL (task threads, the PG broker). */
export interface BenchDatabase {
  pool: Pool;
  url: string;
}

export interface BenchRuntime {
  runtime: Runtime;
  namespace: string;
  /** Closes the runtime and removes its broker namespace (Redis keys, or the PostgreSQL schema). */
  dispose(): Promise<void>;
}

/** A fresh broker namespace: a hash-tagged Redis key prefix, or a schema of the PostgreSQL backend. */
export function uniqueNamespace(backend: Backend): string {
  const id = randomBytes(4).toString('hex');
  return backend === 'redis' ? `{aggjobs-bench-${id}}` : `bullmq_bench_${id}`;
}

export async function dropNamespace(backend: Backend, db: BenchDatabase, namespace: string): Promise<void> {
  if (backend === 'postgres') {
    await db.pool.query(`DROP SCHEMA IF EXISTS "${namespace}" CASCADE`);
    return;
  }
  const redis = new Redis(benchRedisUrl);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${namespace}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** A runtime on `backend` with the bench tasks, in its own namespace unless one is given. */
export async function benchRuntime(
  backend: Backend,
  db: BenchDatabase,
  options: { env?: Record<string, string>; now?: () => Date; namespace?: string } = {},
): Promise<BenchRuntime> {
  const settings = parseSettings({
    ...(backend === 'redis' ? { REDIS_URL: benchRedisUrl } : {}),
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'silent',
    ...options.env,
  });
  const namespace = options.namespace ?? uniqueNamespace(backend);
  const runtime = await createRuntime({
    settings,
    pool: db.pool,
    databaseUrl: db.url,
    logger: createLogger(settings.logLevel),
    namespace,
    taskModules: benchTaskModules,
    now: options.now,
  });
  return {
    runtime,
    namespace,
    async dispose() {
      await runtime.close();
      await dropNamespace(backend, db, namespace);
    },
  };
}

/** A worker as `aggjobs worker` starts one by default, with overrides. */
export function benchWorkerOptions(overrides: Partial<WorkerOptions> = {}): WorkerOptions {
  return {
    queues: ['aggregation', 'maintenance'],
    concurrency: 4,
    maxTasksPerChild: 1000,
    maxMemoryPerChildKb: 0,
    shutdownGraceSeconds: 30,
    heartbeatSeconds: 5,
    ...overrides,
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every `everyMs` until it returns a value other than undefined. */
export async function waitFor<T>(
  fn: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`bench: ${what} did not happen within ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

/** Waits until every run in `ids` is finished; returns the latest finished_at (database clock). */
export async function waitForRuns(
  db: BenchDatabase,
  ids: readonly string[],
  timeoutMs: number,
): Promise<Date> {
  return await waitFor(
    async () => {
      const { rows } = await db.pool.query<{ open: number; failed: number; last: Date | null }>(
        `SELECT count(*) FILTER (WHERE state NOT IN ('succeeded', 'failed', 'timed_out', 'revoked'))::int AS open,
                count(*) FILTER (WHERE state <> 'succeeded')::int AS failed, max(finished_at) AS last
         FROM aggjobs.task_runs WHERE id = ANY($1::text[])`,
        [ids],
      );
      const row = rows[0];
      if (row === undefined || row.open > 0) return undefined;
      if (row.failed > 0) throw new Error(`bench: ${row.failed} of ${ids.length} runs did not succeed`);
      return row.last ?? new Date();
    },
    timeoutMs,
    `${ids.length} runs finishing`,
    100,
  );
}

/** Enqueues `n` runs of `task`, `parallel` at a time; returns their ids. */
export async function enqueueMany(
  runtime: Runtime,
  task: string,
  n: number,
  kwargs: (i: number) => Record<string, unknown> = () => ({}),
  parallel = 16,
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += parallel) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(parallel, n - i) }, (_, j) =>
        runtime.enqueue(task, { kwargs: kwargs(i + j) }),
      ),
    );
    ids.push(...batch.map((r) => r.id));
  }
  return ids;
}

/** Forgets the runs the benchmark made (the bench database keeps no history of them). */
export async function forgetRuns(db: BenchDatabase, ids: readonly string[]): Promise<void> {
  await db.pool.query(
    `DELETE FROM aggjobs.task_runs WHERE id = ANY($1::text[]) OR parent_id = ANY($1::text[])`,
    [ids],
  );
}
