/**
 * Entry of a task thread (worker_threads). The pool of a worker process runs each task in one of
 * these, so that the hard time limit can end a task that ignores its abort signal — a busy loop
 * included — with `Worker.terminate()`, without ending the process.
 *
 * The thread keeps one small pg pool across its runs (run-session-pool.ts); every session a run
 * checks out carries `application_name = aggjobs run <id> #<attempt>` first: the parent terminates
 * those backends when it kills the thread, so a statement stuck in PostgreSQL ends with it and
 * releases its locks.
 */
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { settingsScrubber } from '../config/index.ts';
import { createLogger, keepRunLine, type LogLine } from '../log/index.ts';
import {
  builtinTaskSet,
  findTask,
  type AnyTaskDefinition,
  type BrokerProbe,
  type BrokerServing,
} from '../tasks/index.ts';
import { toErrorInfo } from './errors.ts';
import { RunSessionPool } from './run-session-pool.ts';
import { executeTask, type ExecutionOutcome } from './task-executor.ts';
import type { FromThread, ThreadInit, ToThread } from './thread-protocol.ts';

const init = workerData as ThreadInit;
const port = parentPort;
if (port === null) throw new Error('task-thread.ts must run in a worker thread');

const extra: AnyTaskDefinition[] = [];
for (const url of init.taskModules) {
  const mod = (await import(url)) as { tasks?: AnyTaskDefinition[] };
  extra.push(...(mod.tasks ?? []));
}
const tasks = builtinTaskSet(extra);
/** Lines the current run logged (a thread runs one task at a time), kept for its run page. */
let runLines: LogLine[] | undefined;
const logger = createLogger(init.settings.logLevel, {
  name: 'aggjobs worker',
  // As the CLI decided for the worker's process: a thread's own stdout is never a terminal.
  format: init.settings.logFormat,
  scrub: settingsScrubber(init.settings),
  onLine: (line) => {
    if (runLines !== undefined) keepRunLine(runLines, line);
  },
}).child({
  worker: init.workerName,
});

let nextProbe = 1;
const probes = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
const probe = (op: 'ping' | 'counts' | 'serving'): Promise<unknown> =>
  new Promise((resolve, reject) => {
    const id = nextProbe++;
    probes.set(id, { resolve, reject });
    port.postMessage({ type: 'probe', id, op } satisfies FromThread);
  });
const broker: BrokerProbe = {
  kind: init.brokerKind,
  ping: async () => (await probe('ping')) as number,
  counts: async () => (await probe('counts')) as Awaited<ReturnType<BrokerProbe['counts']>>,
  serving: async () => (await probe('serving')) as BrokerServing | undefined,
};

let controller: AbortController | undefined;
/** The sessions of this thread's runs; replaced when a run leaves one checked out. */
let runPool: RunSessionPool | undefined;

port.on('message', (message: ToThread) => {
  if (message.type === 'abort') {
    controller?.abort(new Error(message.reason));
    return;
  }
  if (message.type === 'probe-reply') {
    const p = probes.get(message.id);
    probes.delete(message.id);
    if (message.ok) p?.resolve(message.value);
    else p?.reject(new Error(message.error));
    return;
  }
  controller = new AbortController();
  const signal = controller.signal;
  runLines = [];
  void (async () => {
    const pool = (runPool ??= new RunSessionPool({ connectionString: init.databaseUrl, max: 4 }));
    pool.serveRun({ runId: message.runId, attempt: message.attempt });
    try {
      let outcome: ExecutionOutcome;
      try {
        outcome = await executeTask({
          task: findTask(tasks, message.task),
          args: message.args,
          pool,
          settings: init.settings,
          logger,
          signal,
          runId: message.runId,
          attempt: message.attempt,
          broker,
        });
      } catch (error) {
        outcome = { ok: false, error: toErrorInfo(error, false) };
      }
      if (!pool.settled) {
        // Something of the run still holds (or waits for) a session: it keeps its run's name, and
        // the next run gets a pool of its own. This one closes once those sessions come back.
        runPool = undefined;
        void pool.end().catch(() => undefined);
      }
      port.postMessage({
        type: 'done',
        outcome,
        heapUsedKb: Math.round(getHeapStatistics().used_heap_size / 1024),
        logs: runLines ?? [],
      } satisfies FromThread);
    } finally {
      controller = undefined;
      runLines = undefined;
    }
  })();
});
