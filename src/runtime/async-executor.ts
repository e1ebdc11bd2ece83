import { settingsScrubber } from '../config/index.ts';
import type { Pool } from '../db/index.ts';
import { createLogger, keepRunLine, type Logger, type LogLine } from '../log/index.ts';
import {
  builtinTaskSet,
  findTask,
  type AnyTaskDefinition,
  type BrokerProbe,
  type TaskSet,
} from '../tasks/index.ts';
import { toErrorInfo } from './errors.ts';
import { RunSessionPool } from './run-session-pool.ts';
import { terminateRunSessions } from './run-sessions.ts';
import { executeTask, type ExecutionOutcome } from './task-executor.ts';
import type { RunHandle, ThreadOutcome } from './thread-pool.ts';
import type { ThreadInit, ToThread } from './thread-protocol.ts';

/**
 * Runs tasks in the worker's own event loop (Celery's `--pool` choice: `async` against `threads`).
 * A task thread costs ~33 MiB (its V8 isolate and the modules it loads again, bench `--cases
 * memory`); here there is none, and no hand-off per run.
 *
 * The limits, for tasks that wait on PostgreSQL (all of aggjobs' own):
 * - soft: the run's AbortSignal fires;
 * - hard (and terminate, shutdown, a lost lease): the run's sessions are terminated — its statement
 *   ends, PostgreSQL rolls back and releases its locks — its pool is closed to new checkouts, and its
 *   promise is abandoned: the run ends `killed` at once, whatever the task does afterwards.
 * What only threads can do: stop a task that blocks the event loop (a CPU loop), and keep a task's
 * uncaught exception from ending the process.
 *
 * Each run gets a RunSessionPool for its duration (idle ones are reused, as a task thread reuses its
 * own), its sessions named for the run's attempt (run-sessions.ts).
 */
export class AsyncExecutor {
  private tasks: Promise<TaskSet> | undefined;
  private readonly idle: RunSessionPool[] = [];
  private readonly busy = new Set<RunSessionPool>();
  /** Busy pools a pool restart came during: closed when their run ends. */
  private readonly stale = new Set<RunSessionPool>();
  /** The lines each running run logged, by run id: one logger for all runs routes them by `runId`. */
  private readonly runLines = new Map<string, LogLine[]>();
  private readonly logger: Logger;

  constructor(
    private readonly options: {
      init: ThreadInit;
      /** The parent's pool: used to terminate a killed run's sessions. */
      pool: Pool;
      broker: BrokerProbe;
    },
  ) {
    this.logger = createLogger(options.init.settings.logLevel, {
      name: 'aggjobs worker',
      // As the CLI decided for this process (pretty in a terminal): not re-decided here.
      format: options.init.settings.logFormat,
      scrub: settingsScrubber(options.init.settings),
      onLine: (line, runId) => {
        const lines = runId === undefined ? undefined : this.runLines.get(runId);
        if (lines !== undefined) keepRunLine(lines, line);
      },
    }).child({ worker: options.init.workerName });
  }

  private loadTasks(): Promise<TaskSet> {
    this.tasks ??= (async () => {
      const extra: AnyTaskDefinition[] = [];
      for (const url of this.options.init.taskModules) {
        const mod = (await import(url)) as { tasks?: AnyTaskDefinition[] };
        extra.push(...(mod.tasks ?? []));
      }
      return builtinTaskSet(extra);
    })();
    return this.tasks;
  }

  private takePool(): RunSessionPool {
    const pool =
      this.idle.pop() ?? new RunSessionPool({ connectionString: this.options.init.databaseUrl, max: 4 });
    this.busy.add(pool);
    return pool;
  }

  /** Gives a run's pool back for the next run, or closes it (a killed run, a session still out). */
  private releasePool(pool: RunSessionPool, reuse: boolean): void {
    this.busy.delete(pool);
    const stale = this.stale.delete(pool);
    if (reuse && pool.settled && !stale) this.idle.push(pool);
    else void pool.end().catch(() => undefined);
  }

  /**
   * Pool restart: the idle run sessions are closed now, a running run's when it ends (they are not
   * reused); returns how many pools were closed now.
   */
  restart(): number {
    const idle = this.idle.splice(0);
    for (const pool of idle) void pool.end().catch(() => undefined);
    for (const pool of this.busy) this.stale.add(pool);
    return idle.length;
  }

  run(
    request: Extract<ToThread, { type: 'run' }>,
    limits: { softMs: number; hardMs: number },
    onStart?: (handle: RunHandle) => void,
  ): Promise<ThreadOutcome> {
    const { init, broker } = this.options;
    const pool = this.takePool();
    pool.serveRun({ runId: request.runId, attempt: request.attempt });
    const controller = new AbortController();
    const lines: LogLine[] = [];
    this.runLines.set(request.runId, lines);

    return new Promise<ThreadOutcome>((resolve) => {
      let settled = false;
      let killing = false;
      let softLimitHit = false;
      const finish = (outcome: ThreadOutcome, reusePool: boolean): void => {
        if (settled) return;
        settled = true;
        // A takeover by this process may have given the run id to a newer attempt's lines already.
        if (this.runLines.get(request.runId) === lines) this.runLines.delete(request.runId);
        clearTimeout(softTimer);
        clearTimeout(hardTimer);
        this.releasePool(pool, reusePool);
        resolve(outcome);
      };
      const kill = (reason: 'hard_limit' | 'terminated' | 'shutdown' | 'lease_lost'): void => {
        if (settled || killing) return;
        killing = true;
        controller.abort(new Error(`killed: ${reason}`));
        // Before the sessions are looked up by name: a session still connecting now is closed
        // instead of serving the abandoned task (run-session-pool.ts).
        pool.refuseCheckouts(new Error(`killed: ${reason}`));
        void (async () => {
          // The sessions go first: the statement stuck in PostgreSQL ends, its locks with it. The
          // pool is then closed (releasePool), so the abandoned task cannot take another session.
          // A terminate that fails (the database unreachable) must not leave the run unsettled nor
          // reject unhandled: the run ends killed; a later takeover kills its sessions by name.
          await terminateRunSessions(this.options.pool, request.runId, request.attempt).catch(() => 0);
          finish({ kind: 'killed', reason, softLimitHit }, false);
        })();
      };
      const softTimer = setTimeout(() => {
        softLimitHit = true;
        controller.abort(new Error('soft time limit'));
      }, limits.softMs);
      const hardTimer = setTimeout(() => kill('hard_limit'), limits.hardMs);
      onStart?.({ kill, abort: (reason) => controller.abort(new Error(reason)) });

      void (async () => {
        let outcome: ExecutionOutcome;
        try {
          const tasks = await this.loadTasks();
          outcome = await executeTask({
            task: findTask(tasks, request.task),
            args: request.args,
            pool,
            settings: init.settings,
            logger: this.logger,
            signal: controller.signal,
            runId: request.runId,
            attempt: request.attempt,
            broker,
          });
        } catch (error) {
          outcome = { ok: false, error: toErrorInfo(error, false) };
        }
        // Once a kill has begun, the task's own end (its statement failed because the kill
        // terminated its session) is not its outcome: the kill's is.
        if (killing) return;
        finish({ kind: 'done', outcome, softLimitHit, logs: lines }, true);
      })();
    });
  }

  async close(): Promise<void> {
    const pools = [...this.idle, ...this.busy];
    this.idle.length = 0;
    this.busy.clear();
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
  }
}
