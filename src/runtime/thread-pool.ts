import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Pool } from '../db/index.ts';
import type { LogLine } from '../log/index.ts';
import type { BrokerProbe } from '../tasks/index.ts';
import type { ExecutionOutcome } from './task-executor.ts';
import { AsyncExecutor } from './async-executor.ts';
import { terminateRunSessions } from './run-sessions.ts';
import { type FromThread, type ThreadInit, type ToThread } from './thread-protocol.ts';

/** How a run in a thread ended. */
export type ThreadOutcome =
  | { kind: 'done'; outcome: ExecutionOutcome; softLimitHit: boolean; logs: LogLine[] }
  | { kind: 'killed'; reason: 'hard_limit' | 'terminated' | 'shutdown' | 'lease_lost'; softLimitHit: boolean }
  | { kind: 'crashed'; message: string };

export interface RunHandle {
  /** Kills the run now: terminates its thread and its database sessions. */
  kill(reason: 'terminated' | 'shutdown' | 'lease_lost'): void;
  /** Asks the run to stop (its AbortSignal fires). */
  abort(reason: string): void;
}

interface Slot {
  worker: Worker;
  tasksRun: number;
  heapUsedKb: number;
  /** A pool restart came while it ran: it is replaced when its run ends. */
  stale?: boolean;
}

export interface ThreadPoolOptions {
  init: ThreadInit;
  /** The parent's pool: used to terminate a killed run's sessions. */
  pool: Pool;
  broker: BrokerProbe;
  maxTasksPerThread: number;
  /** KiB of heap after which a thread is replaced; 0: no limit. */
  maxMemoryKb: number;
  onRecycle?: (reason: string) => void;
  /**
   * Where tasks run (Celery's `--pool`; the worker's default is WORKER_POOL, `async`): `threads`, a
   * task thread each, which can end a task that blocks its event loop; or `async`, in this
   * process's event loop (async-executor.ts: ~33 MiB less per concurrent task, hard limits by
   * terminating the run's sessions).
   */
  executor?: 'threads' | 'async';
}

/**
 * The young generation of a task thread's V8 heap, MiB. V8 sizes it for a whole process (up to
 * 3 × 16 MiB semi-spaces on 64-bit), and each thread is an isolate of its own: four threads that
 * allocate steadily (every run's messages, rows, log lines) kept ~36 MiB each resident, most of a
 * `-c 4` worker's growth from 101 MiB ready to 245 MiB after 1,000 runs (bench, `--cases memory`).
 * Their live data is small; a smaller nursery only means more frequent, shorter scavenges.
 */
const threadYoungGenerationMb = 8;

function spawn(init: ThreadInit): Worker {
  const resourceLimits = { maxYoungGenerationSizeMb: threadYoungGenerationMb };
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    // Running from source (tsx, vitest): the thread registers tsx's loader before importing the entry.
    const tsx = join(dirname(createRequire(here).resolve('tsx/package.json')), 'dist/esm/api/index.mjs');
    const entry = new URL('./task-thread.ts', here).href;
    const code =
      `import(${JSON.stringify(`file://${tsx}`)}).then((api) => { api.register(); ` +
      `return import(${JSON.stringify(entry)}); })`;
    return new Worker(code, { eval: true, workerData: init, execArgv: [], resourceLimits });
  }
  return new Worker(new URL('./task-thread.js', here), { workerData: init, resourceLimits });
}

/**
 * The threads of one worker process. A run takes an idle thread (or a new one); the thread goes back
 * to the idle list unless it has run `maxTasksPerThread` tasks or outgrown `maxMemoryKb` (Celery's
 * --max-tasks-per-child and --max-memory-per-child), in which case it is replaced.
 */
export class TaskThreadPool {
  private readonly idle: Slot[] = [];
  private readonly all = new Set<Slot>();
  recycled = 0;
  private readonly inLoop: AsyncExecutor | undefined;

  constructor(private readonly options: ThreadPoolOptions) {
    if (options.executor === 'async') this.inLoop = new AsyncExecutor(options);
  }

  get threads(): number {
    return this.all.size;
  }

  private take(): Slot {
    const slot = this.idle.pop();
    if (slot !== undefined) return slot;
    const worker = spawn(this.options.init);
    worker.unref();
    const fresh: Slot = { worker, tasksRun: 0, heapUsedKb: 0 };
    this.all.add(fresh);
    return fresh;
  }

  private retire(slot: Slot, reason: string | undefined): void {
    this.all.delete(slot);
    void slot.worker.terminate().catch(() => undefined);
    if (reason !== undefined) {
      this.recycled += 1;
      this.options.onRecycle?.(reason);
    }
  }

  private giveBack(slot: Slot): void {
    if (slot.stale === true) {
      this.retire(slot, 'pool restart');
    } else if (slot.tasksRun >= this.options.maxTasksPerThread) {
      this.retire(slot, `ran ${slot.tasksRun} tasks (max tasks per child ${this.options.maxTasksPerThread})`);
    } else if (this.options.maxMemoryKb > 0 && slot.heapUsedKb > this.options.maxMemoryKb) {
      this.retire(
        slot,
        `heap ${slot.heapUsedKb} KiB over max memory per child ${this.options.maxMemoryKb} KiB`,
      );
    } else {
      this.idle.push(slot);
    }
  }

  /**
   * Celery's pool restart: idle threads (or, on the async pool, idle run sessions) are ended now and
   * busy ones when their run ends; the next runs get fresh ones (task modules loaded again in a
   * thread, new database sessions). Returns how many were ended now.
   */
  restart(): number {
    if (this.inLoop !== undefined) return this.inLoop.restart();
    const idle = this.idle.splice(0);
    for (const slot of idle) this.retire(slot, 'pool restart');
    for (const slot of this.all) slot.stale = true;
    return idle.length;
  }

  /** Terminates the database sessions of a run's attempt, or of all its attempts (run-sessions.ts). */
  async killSessions(runId: string, attempt?: number): Promise<number> {
    return await terminateRunSessions(this.options.pool, runId, attempt);
  }

  /**
   * Runs a task in a thread with a soft limit (its signal fires) and a hard limit (its thread and
   * sessions are killed). `onStart` receives a handle to kill or abort it from outside.
   */
  run(
    request: Extract<ToThread, { type: 'run' }>,
    limits: { softMs: number; hardMs: number },
    onStart?: (handle: RunHandle) => void,
  ): Promise<ThreadOutcome> {
    if (this.inLoop !== undefined) return this.inLoop.run(request, limits, onStart);
    const slot = this.take();
    const { worker } = slot;
    return new Promise<ThreadOutcome>((resolve) => {
      let settled = false;
      let softLimitHit = false;
      const finish = (outcome: ThreadOutcome, keep: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(softTimer);
        clearTimeout(hardTimer);
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        if (keep) this.giveBack(slot);
        else if (this.all.has(slot)) this.retire(slot, undefined);
        resolve(outcome);
      };
      let killing = false;
      const kill = (reason: 'hard_limit' | 'terminated' | 'shutdown' | 'lease_lost'): void => {
        if (settled || killing) return;
        // The thread's exit that terminate() causes is ours: not a crash.
        killing = true;
        void (async () => {
          await worker.terminate().catch(() => undefined);
          // A failed terminate must not leave the run unsettled (see async-executor.ts).
          await this.killSessions(request.runId, request.attempt).catch(() => 0);
          finish({ kind: 'killed', reason, softLimitHit }, false);
        })();
      };
      const onMessage = (message: FromThread): void => {
        if (message.type === 'probe') {
          const reply = (value: Promise<unknown>): void => {
            value.then(
              (v) =>
                worker.postMessage({
                  type: 'probe-reply',
                  id: message.id,
                  ok: true,
                  value: v,
                } satisfies ToThread),
              (e: unknown) =>
                worker.postMessage({
                  type: 'probe-reply',
                  id: message.id,
                  ok: false,
                  error: String(e),
                } satisfies ToThread),
            );
          };
          const { broker } = this.options;
          reply(
            message.op === 'ping'
              ? broker.ping()
              : message.op === 'counts'
                ? broker.counts()
                : (broker.serving?.() ?? Promise.resolve(undefined)),
          );
          return;
        }
        slot.tasksRun += 1;
        slot.heapUsedKb = message.heapUsedKb;
        finish({ kind: 'done', outcome: message.outcome, softLimitHit, logs: message.logs }, true);
      };
      const onError = (error: Error): void => {
        if (!killing) finish({ kind: 'crashed', message: error.message }, false);
      };
      const onExit = (code: number): void => {
        if (!killing) finish({ kind: 'crashed', message: `task thread exited with code ${code}` }, false);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      const softTimer = setTimeout(() => {
        softLimitHit = true;
        worker.postMessage({ type: 'abort', reason: 'soft time limit' } satisfies ToThread);
      }, limits.softMs);
      const hardTimer = setTimeout(() => kill('hard_limit'), limits.hardMs);
      onStart?.({
        kill,
        abort: (reason) => worker.postMessage({ type: 'abort', reason } satisfies ToThread),
      });
      worker.postMessage(request satisfies ToThread);
    });
  }

  async close(): Promise<void> {
    await this.inLoop?.close();
    await Promise.all([...this.all].map((s) => s.worker.terminate().catch(() => undefined)));
    this.all.clear();
    this.idle.length = 0;
  }
}
