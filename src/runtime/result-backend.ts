import { createRedisClient } from './redis-client.ts';

/**
 * CELERY_RESULT_BACKEND: results also kept in Redis under Celery's own key and shape
 * (`celery-task-meta-<id>`, `{status, result, traceback, task_id, date_done}`) with an expiry, so
 * tools that read Celery results keep working. The durable record stays aggjobs.task_runs.
 */
export interface ResultBackend {
  store(
    runId: string,
    state: 'succeeded' | 'failed' | 'timed_out' | 'revoked',
    value: unknown,
  ): Promise<void>;
  fetch(runId: string): Promise<{ status: string; result: unknown } | undefined>;
  close(): Promise<void>;
}

const celeryStatus = {
  succeeded: 'SUCCESS',
  failed: 'FAILURE',
  timed_out: 'FAILURE',
  revoked: 'REVOKED',
} as const;

export async function createResultBackend(url: string, expiresSeconds: number): Promise<ResultBackend> {
  const redis = createRedisClient(url, { maxRetriesPerRequest: 3 });
  redis.on('error', () => undefined);
  await redis.ping();
  return {
    async store(runId, state, value) {
      const body = {
        task_id: runId,
        status: celeryStatus[state],
        result: state === 'succeeded' ? value : { exc_type: state, exc_message: String(value) },
        traceback: state === 'succeeded' ? null : String(value),
        date_done: new Date().toISOString(),
      };
      await redis.set(`celery-task-meta-${runId}`, JSON.stringify(body), 'EX', expiresSeconds);
    },
    async fetch(runId) {
      const text = await redis.get(`celery-task-meta-${runId}`);
      if (text === null) return undefined;
      const body = JSON.parse(text) as { status: string; result: unknown };
      return { status: body.status, result: body.result };
    },
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
