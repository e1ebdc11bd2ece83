import { describe, expect, it } from 'vitest';
import { celeryTaskMeta } from './result-backend.ts';

/**
 * The JSON Celery's Redis result backend writes (celery/backends/base.py: `_get_result_meta` gives
 * status, result, traceback, children, date_done; the Redis backend adds task_id; a failure's result
 * is `prepare_exception`'s {exc_type, exc_message: exception args, exc_module}). Each expectation
 * below was read back with Celery 5.6.3's AsyncResult (state, result's class, traceback, date_done).
 */
const done = new Date('2026-11-30T19:30:00.123Z');

describe('celery-task-meta in Celery’s shape', () => {
  it('a success: the value as result, no traceback, no children', () => {
    expect(celeryTaskMeta('r1', 'succeeded', { grain: 'hour' }, done)).toStrictEqual({
      task_id: 'r1',
      status: 'SUCCESS',
      result: { grain: 'hour' },
      traceback: null,
      children: [],
      date_done: '2026-11-30T19:30:00.123+00:00',
    });
  });

  it.each([
    ['failed', 'FAILURE', 'builtins', 'Exception'],
    ['timed_out', 'FAILURE', 'billiard.exceptions', 'TimeLimitExceeded'],
    ['revoked', 'REVOKED', 'celery.exceptions', 'TaskRevokedError'],
  ] as const)(
    '%s: status %s, the exception %s.%s with the message as its argument',
    (state, status, module, type) => {
      expect(celeryTaskMeta('r2', state, 'what went wrong', done)).toStrictEqual({
        task_id: 'r2',
        status,
        result: { exc_type: type, exc_message: ['what went wrong'], exc_module: module },
        traceback: 'what went wrong',
        children: [],
        date_done: '2026-11-30T19:30:00.123+00:00',
      });
    },
  );
});
