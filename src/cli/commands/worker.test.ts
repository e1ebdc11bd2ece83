import { describe, expect, it } from 'vitest';
import { parseSettings } from '../../config/index.ts';
import { UsageError } from '../usage.error.ts';
import { checkLogLevel, workerOptionsFrom } from './worker.ts';

const settings = parseSettings({});

describe('worker flags', () => {
  it('has the seed defaults', () => {
    expect(workerOptionsFrom({}, settings)).toMatchObject({
      queues: ['aggregation', 'maintenance'],
      concurrency: 4,
      maxTasksPerChild: 1000,
      pool: 'async',
    });
    expect(workerOptionsFrom({}, parseSettings({ WORKER_POOL: 'threads' }))).toMatchObject({
      pool: 'threads',
    });
  });

  it('reads the Celery flags', () => {
    expect(
      workerOptionsFrom(
        { concurrency: '8', queues: 'aggregation', maxTasksPerChild: '50', pool: 'threads' },
        settings,
      ),
    ).toMatchObject({
      queues: ['aggregation'],
      concurrency: 8,
      maxTasksPerChild: 50,
      pool: 'threads',
    });
    expect(workerOptionsFrom({ autoscale: '8,2' }, settings)).toMatchObject({
      autoscale: { max: 8, min: 2 },
      concurrency: 8,
    });
    expect(checkLogLevel('INFO')).toBe('info');
    expect(checkLogLevel('warning')).toBe('warn');
  });

  it.each([
    [{ concurrency: '0' }, '--concurrency must be an integer from 1 to 256, got "0"'],
    [{ concurrency: '4.5' }, '--concurrency must be an integer from 1 to 256, got "4.5"'],
    [{ autoscale: '2,8' }, '--autoscale must be max,min with 1 <= min <= max <= 256, got "2,8"'],
    [{ autoscale: '8' }, '--autoscale must be max,min with 1 <= min <= max <= 256, got "8"'],
    [{ queues: 'aggregation,celery' }, '-Q must list queues among aggregation, maintenance, got "celery"'],
    [
      { maxTasksPerChild: '-1', pool: 'threads' },
      '--max-tasks-per-child must be an integer from 1 to 1000000000, got "-1"',
    ],
    [{ pool: 'prefork' }, '--pool must be threads or async, got "prefork"'],
    [
      { maxTasksPerChild: '50' },
      '--max-tasks-per-child replaces task threads: it needs --pool threads (the pool is async, from WORKER_POOL)',
    ],
    [
      { maxMemoryPerChild: '50000', pool: 'async' },
      '--max-memory-per-child replaces task threads: it needs --pool threads (the pool is async, from --pool)',
    ],
  ])('rejects %j naming the option and the rule', (flags, message) => {
    expect(() => workerOptionsFrom(flags, settings)).toThrow(new UsageError(message));
  });

  it('rejects an unknown log level', () => {
    expect(() => checkLogLevel('loud')).toThrow(/--loglevel must be one of trace, debug/);
  });
});
