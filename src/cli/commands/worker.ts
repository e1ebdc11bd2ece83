import { Command } from 'commander';
import type { Settings } from '../../config/index.ts';
import { startServices, type WorkerOptions } from '../../runtime/index.ts';
import { queueNames, type QueueName } from '../../tasks/index.ts';
import { createRuntimeFor, openContext } from '../context.ts';
import { watchForStop } from '../shutdown-notice.ts';
import { UsageError } from '../usage.error.ts';

export interface WorkerFlags {
  concurrency?: string;
  autoscale?: string;
  queues?: string;
  maxTasksPerChild?: string;
  maxMemoryPerChild?: string;
  hostname?: string;
  pool?: string;
}

const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** --loglevel, checked (Celery spells them in capitals: INFO is accepted). */
export function checkLogLevel(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const lower = value.toLowerCase() === 'warning' ? 'warn' : value.toLowerCase();
  if (!levels.includes(lower))
    throw new UsageError(`--loglevel must be one of ${levels.join(', ')}, got ${JSON.stringify(value)}`);
  return lower;
}

function positiveInt(flag: string, value: string, max: number): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new UsageError(`${flag} must be an integer from 1 to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Celery's worker flags, checked: a bad value is a usage error (exit 2) before anything starts. */
export function workerOptionsFrom(flags: WorkerFlags, settings: Settings): WorkerOptions {
  const queues = (flags.queues ?? queueNames.join(',')).split(',').map((q) => q.trim());
  for (const q of queues) {
    if (!queueNames.includes(q as QueueName)) {
      throw new UsageError(`-Q must list queues among ${queueNames.join(', ')}, got ${JSON.stringify(q)}`);
    }
  }
  let autoscale: WorkerOptions['autoscale'];
  if (flags.autoscale !== undefined) {
    const m = /^(\d+),(\d+)$/.exec(flags.autoscale);
    const max = Number(m?.[1]);
    const min = Number(m?.[2]);
    if (m === null || max < 1 || min < 1 || min > max || max > 256) {
      throw new UsageError(
        `--autoscale must be max,min with 1 <= min <= max <= 256, got ${JSON.stringify(flags.autoscale)}`,
      );
    }
    autoscale = { max, min };
  }
  const pool = flags.pool === undefined ? settings.workerPool : poolKind(flags.pool);
  const recycling =
    flags.maxTasksPerChild !== undefined
      ? '--max-tasks-per-child'
      : flags.maxMemoryPerChild !== undefined
        ? '--max-memory-per-child'
        : undefined;
  if (pool === 'async' && recycling !== undefined) {
    throw new UsageError(
      `${recycling} replaces task threads: it needs --pool threads (the pool is async, from ${flags.pool === undefined ? 'WORKER_POOL' : '--pool'})`,
    );
  }
  return {
    queues: [...new Set(queues)] as QueueName[],
    concurrency:
      flags.concurrency === undefined
        ? (autoscale?.max ?? settings.workerConcurrency)
        : positiveInt('--concurrency', flags.concurrency, 256),
    autoscale,
    maxTasksPerChild:
      flags.maxTasksPerChild === undefined
        ? settings.workerMaxTasksPerChild
        : positiveInt('--max-tasks-per-child', flags.maxTasksPerChild, 1_000_000_000),
    maxMemoryPerChildKb:
      flags.maxMemoryPerChild === undefined
        ? settings.workerMaxMemoryPerChildKb
        : positiveInt('--max-memory-per-child', flags.maxMemoryPerChild, 1_000_000_000),
    shutdownGraceSeconds: settings.workerShutdownGraceSeconds,
    lockDurationMs: settings.workerLockSeconds * 1000,
    stalledIntervalMs: Math.min(30, settings.workerLockSeconds) * 1000,
    name: flags.hostname,
    pool,
  };
}

/** --pool, checked: where tasks run (Celery's --pool prefork|threads|solo). */
function poolKind(value: string): 'threads' | 'async' {
  if (value === 'threads') return 'threads';
  if (value === 'async') return 'async';
  throw new UsageError(`--pool must be threads or async, got ${JSON.stringify(value)}`);
}

export function addWorkerFlags(command: Command): Command {
  return command
    .option('-c, --concurrency <n>', 'tasks run at once (default WORKER_CONCURRENCY, 4)')
    .option('--autoscale <max,min>', 'follow the queue depth between min and max concurrent tasks')
    .option('-Q, --queues <list>', 'queues to consume', 'aggregation,maintenance')
    .option(
      '--pool <kind>',
      'async (default WORKER_POOL: tasks in the event loop, least memory) or threads (each task in a thread: a busy loop can be killed)',
    )
    .option('--max-tasks-per-child <n>', 'replace a task thread after this many tasks (default 1000)')
    .option(
      '--max-memory-per-child <KiB>',
      "replace a task thread whose heap exceeds this (KiB, Celery's unit)",
    )
    .option('-n, --hostname <name>', 'worker name (default pid@host)');
}

export function workerCommand(): Command {
  return addWorkerFlags(new Command('worker').description('run tasks from the queues (Celery worker)'))
    .option('-l, --loglevel <level>', 'trace, debug, info, warn, error')
    .action(async (flags: WorkerFlags & { loglevel?: string }) => {
      const stop = watchForStop();
      const ctx = await openContext({ name: 'worker', logLevel: checkLogLevel(flags.loglevel) });
      stop.current.logger = ctx.logger;
      const options = workerOptionsFrom(flags, ctx.settings);
      const runtime = await createRuntimeFor(ctx);
      ctx.logger.info(`broker: ${runtime.broker.describe}`);
      const services = await startServices(runtime, { worker: options });
      stop.current.services = services;
      await stop.untilStop(
        'the worker',
        options.shutdownGraceSeconds,
        'shutdown requested from another process: this worker process exits',
      );
      await services.close();
      await runtime.close();
      await ctx.close();
    });
}
