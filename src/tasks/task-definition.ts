import type { z } from 'zod';
import type { Settings } from '../config/index.ts';
import type { Pool, Queryable } from '../db/index.ts';
import type { Logger } from '../log/index.ts';

/** The two queues of the seed: rollups and backfills on one, upkeep on the other. */
export type QueueName = 'aggregation' | 'maintenance';
export const queueNames: readonly QueueName[] = ['aggregation', 'maintenance'];

/** What a task needs to know about the broker (health check): implemented by the runtime. */
export interface BrokerProbe {
  readonly kind: 'redis' | 'postgres';
  /** Round trip to the broker in milliseconds; throws when unreachable. */
  ping(): Promise<number>;
  counts(): Promise<Record<string, { waiting: number; active: number; delayed: number; failed: number }>>;
  /**
   * Redis only: the server that answers for the queues now (the primary, or the Cluster master of
   * the queues' slot) and the failovers recorded by any process.
   */
  serving?(): Promise<BrokerServing | undefined>;
}

export interface BrokerServing {
  node: string;
  failovers: Array<{ from: string; to: string; seenAt: Date }>;
}

/**
 * What tasks read and change of the runtime's tables (aggjobs.task_runs, beat_slots, workers),
 * through the module that owns them (src/runtime/run-history.ts; tasks sit below the runtime).
 */
export interface RunHistory {
  /** Removes finished runs and claimed beat slots older than `days`, and workers silent for a day; the runs removed. */
  prune(days: number): Promise<number>;
  /** The last success of each of `tasks` (absent: never), the first run ever enqueued, and the database's clock. */
  lastSuccesses(
    tasks: readonly string[],
  ): Promise<{ last: Map<string, Date>; firstRun: Date | null; now: Date }>;
  /**
   * A child run (a backfill window) started: its parent, while queued, becomes running, started when
   * its first child started. The parent's attempts stay 0: they count its own summing-up attempts.
   * `within`: the caller's transaction, when the start goes with a change of its own.
   */
  startParent(childRunId: string, within?: Queryable): Promise<void>;
  /** Per task: failures of the last hour that no later run of the same task and arguments made good. */
  unfixedFailures(): Promise<Array<{ task: string; n: number }>>;
  /**
   * Per queue with open runs: runs due for over `dueSeconds`, running runs whose lease expired over
   * `stuckSeconds` ago, and workers on it with a heartbeat in the last `liveSeconds`.
   */
  queueService(limits: {
    liveSeconds: number;
    dueSeconds: number;
    stuckSeconds: number;
  }): Promise<Array<{ queue: string; due: number; stuck: number; liveWorkers: number }>>;
}

/** What a running task gets: its database, settings, a logger bound to the run, and its abort signal. */
export interface TaskContext {
  readonly pool: Pool;
  readonly settings: Settings;
  readonly logger: Logger;
  /** Aborted at the soft time limit, on terminate, or at shutdown: stop, and let SQL be cancelled. */
  readonly signal: AbortSignal;
  readonly runId: string;
  readonly attempt: number;
  readonly broker: BrokerProbe | undefined;
  readonly runs: RunHistory;
  /** The clock (a seam for tests). */
  now(): Date;
}

/** What argument validation may depend on. */
export interface ArgsEnvironment {
  readonly settings: Settings;
  readonly now: Date;
}

/**
 * One task: its name, queue, argument schema, limits and body. `Args` is the validated, JSON-safe
 * arguments object (keyword form); `positional` names the fields that `args: [...]` fills, in order.
 */
export interface TaskDefinition<Input = unknown, Args = Input, Result = unknown> {
  readonly name: string;
  readonly queue: QueueName;
  readonly description: string;
  readonly positional: readonly string[];
  readonly schema: (env: ArgsEnvironment) => z.ZodType<Args, Input>;
  /** Default limits in seconds; TASK_TIME_LIMITS overrides them. Undefined: TASK_*_TIME_LIMIT. */
  readonly hardLimitSeconds?: number;
  readonly softLimitSeconds?: number;
  /**
   * Cron expression in ANALYTICS_TIMEZONE, its nominal period (what the health check allows twice
   * of), and the feature flag that enables it.
   */
  readonly schedule?: {
    readonly cron: string;
    readonly periodSeconds: number;
    readonly enabled: (settings: Settings) => boolean;
  };
  /**
   * A task that fans out (backfill): called at enqueue, returns the child runs to process first, in
   * parallel; this task runs once they have all finished.
   */
  expand?(
    env: { pool: Pool; settings: Settings },
    args: Args,
  ): Promise<Array<{ task: string; args: Record<string, unknown> }>>;
  run(ctx: TaskContext, args: Args): Promise<Result>;
}

/** A task of any types, as the worker handles it (`run` is a method, so its parameter is bivariant). */
export type AnyTaskDefinition = TaskDefinition<unknown, unknown, unknown>;
