import { createRedisClient } from './redis-client.ts';

/**
 * CELERY_RESULT_BACKEND: results also kept in Redis under Celery's key, `celery-task-meta-<id>`, in
 * the JSON its Redis backend writes (celery/backends/base.py, `_get_result_meta` and
 * `prepare_exception`), with an expiry, so a Celery client's AsyncResult(id) reads the state, the
 * result and the failure. `children` is always empty (a backfill's window runs are in
 * aggjobs.task_runs). The durable record stays aggjobs.task_runs.
 */
export interface ResultBackend {
  store(
    runId: string,
    state: 'succeeded' | 'failed' | 'timed_out' | 'revoked',
    value: unknown,
  ): Promise<void>;
  close(): Promise<void>;
}

export interface CeleryTaskMeta {
  task_id: string;
  status: 'SUCCESS' | 'FAILURE' | 'REVOKED';
  /** The value, or the exception as Celery serialises it for JSON. */
  result: unknown;
  traceback: string | null;
  children: [];
  date_done: string;
}

/**
 * The exception a Celery worker records for each final state: a task's own failure as a plain
 * Exception, a time limit as billiard's TimeLimitExceeded, a revoke as Celery's TaskRevokedError.
 */
const celeryOutcome = {
  succeeded: { status: 'SUCCESS', exc: undefined },
  failed: { status: 'FAILURE', exc: { module: 'builtins', type: 'Exception' } },
  timed_out: { status: 'FAILURE', exc: { module: 'billiard.exceptions', type: 'TimeLimitExceeded' } },
  revoked: { status: 'REVOKED', exc: { module: 'celery.exceptions', type: 'TaskRevokedError' } },
} as const;

export function celeryTaskMeta(
  runId: string,
  state: keyof typeof celeryOutcome,
  value: unknown,
  done: Date,
): CeleryTaskMeta {
  const { status, exc } = celeryOutcome[state];
  const message = exc === undefined ? '' : String(value);
  return {
    task_id: runId,
    status,
    result:
      exc === undefined ? value : { exc_type: exc.type, exc_message: [message], exc_module: exc.module },
    traceback: exc === undefined ? null : message,
    children: [],
    // Python's datetime.isoformat() of an aware UTC time, as Celery writes it.
    date_done: done.toISOString().replace('Z', '+00:00'),
  };
}

export async function createResultBackend(url: string, expiresSeconds: number): Promise<ResultBackend> {
  const redis = createRedisClient(url, { maxRetriesPerRequest: 3 });
  redis.on('error', () => undefined);
  await redis.ping();
  return {
    async store(runId, state, value) {
      const body = celeryTaskMeta(runId, state, value, new Date());
      await redis.set(`celery-task-meta-${runId}`, JSON.stringify(body), 'EX', expiresSeconds);
    },
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
