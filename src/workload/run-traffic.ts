import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool, PoolClient } from '../db/index.ts';
import { DueQueue } from './due-queue.ts';
import { demoDefaults, checkInteger, seedLimits } from './seed-options.ts';
import { insertWorkspaces } from './seed-sql.ts';
import { drawDurationMs, drawOutcome, seededRandom } from './seeded-random.ts';
import { installSessionFunctions } from './session-functions.ts';
import { adoptRunning, trafficTick, workspaceCount } from './traffic-sql.ts';
import { WorkloadOptionError } from './workload-option.error.ts';

export interface TrafficOptions {
  /** Writes per second to aim for. */
  rate: number;
  /** Stop after this long; default: until `signal` aborts. */
  durationSeconds?: number;
  seed: number;
  /** Aborting stops the loop after the statement in flight. */
  signal?: AbortSignal;
  /** Called after every tick with the totals so far. */
  onTick?: (stats: TrafficStats) => void;
  /** Default: the highest id in public.workspaces (the demo's workspaces are created when there are none). */
  workspaces?: number;
  /** Default: ten per workspace. */
  users?: number;
}

/**
 * Totals of a traffic run. A write is one application event: an insert, a completion (the UPDATE
 * and the credit charge it brings count as one), or a late row.
 */
export interface TrafficStats {
  /** Executions started, activity events and api/storage credit transactions, all timed now. */
  inserts: number;
  /** Running executions updated to their final status. */
  completions: number;
  /** Finished executions and activity events that arrived with an old event time. */
  lateRows: number;
  /** Ticks that failed (the connection is replaced and the loop goes on). */
  errors: number;
  writes: number;
  elapsedMs: number;
  /** Executions this run started (or adopted) that are still running. */
  running: number;
  lastError?: string;
}

/** How often the loop writes: 10 batches a second. */
const TICK_MS = 100;
/** After an outage the loop catches up at most one second of writes, not a burst of all it missed. */
const CATCH_UP_SECONDS = 1;
/**
 * How a tick's writes (after the completions that are due) are shared: executions started,
 * activity events, api/storage credit transactions, late rows. In a steady state completions match
 * the starts, so of all writes ~29 % start, ~29 % complete, ~29 % are activity, ~9 % credits, ~4 % late.
 */
const SHARES = { start: 0.42, activity: 0.42, credits: 0.11, late: 0.05 } as const;

export const trafficLimits = Object.freeze({
  rate: { min: 1, max: 100_000 },
  durationSeconds: { min: 1, max: 31_536_000 },
});

/** Validates traffic options; throws `WorkloadOptionError` naming the first bad one. */
export function checkTrafficOptions(options: TrafficOptions): void {
  checkInteger('rate', options.rate, trafficLimits.rate.min, trafficLimits.rate.max);
  if (options.durationSeconds !== undefined) {
    checkInteger(
      'durationSeconds',
      options.durationSeconds,
      trafficLimits.durationSeconds.min,
      trafficLimits.durationSeconds.max,
    );
  }
  checkInteger('seed', options.seed, seedLimits.seed.min, seedLimits.seed.max);
  if (options.workspaces !== undefined) {
    checkInteger('workspaces', options.workspaces, 1, seedLimits.workspaces.max);
  }
  if (options.users !== undefined) {
    checkInteger('users', options.users, 1, seedLimits.users.max);
    if (options.users < (options.workspaces ?? 1)) {
      throw new WorkloadOptionError('users', `at least workspaces (${options.workspaces})`, options.users);
    }
  }
}

/** Splits `n` writes among the shares with one draw each. */
function split(
  n: number,
  random: () => number,
): { start: number; activity: number; credits: number; late: number } {
  const counts = { start: 0, activity: 0, credits: 0, late: 0 };
  for (let i = 0; i < n; i += 1) {
    const u = random();
    if (u < SHARES.start) counts.start += 1;
    else if (u < SHARES.start + SHARES.activity) counts.activity += 1;
    else if (u < SHARES.start + SHARES.activity + SHARES.credits) counts.credits += 1;
    else counts.late += 1;
  }
  return counts;
}

async function openSession(pool: Pool): Promise<PoolClient> {
  const client = await pool.connect();
  // A checked-out client whose server goes away (restart, pg_terminate_backend) emits 'error' when
  // it is between queries; unhandled, that would end the process. Its next query fails instead,
  // and the caller handles that.
  client.on('error', () => undefined);
  try {
    await client.query('SET jit = off');
    await installSessionFunctions(client);
    return client;
  } catch (error) {
    client.release(true);
    throw error;
  }
}

/** The data set's workspaces, creating the demo's when there are none. */
async function resolveWorkspaces(client: PoolClient, seed: number): Promise<number> {
  const { rows } = await client.query<{ n: number }>(workspaceCount);
  const n = rows[0]?.n ?? 0;
  if (n > 0) return n;
  await client.query(insertWorkspaces, [demoDefaults.workspaces, new Date(), seed]);
  return demoDefaults.workspaces;
}

interface TickRow {
  started_ids: number[];
  completed: number;
  activity: number;
  credited: number;
  late_executions: number;
}

/**
 * Streams live writes of the seeded history's shape at about `rate` writes per second until
 * `signal` aborts or `durationSeconds` pass: executions start as 'running' and are completed by an
 * UPDATE when their drawn duration has passed; activity events, credit transactions and late rows
 * arrive in between. One statement per tick on one connection; a failed tick is counted, the
 * connection replaced and the loop goes on (fault tests kill connections and restart servers).
 * Running executions of the newest hour in the table are adopted, so a previous run's leftovers
 * complete (or time out) too.
 */
export async function runTraffic(pool: Pool, options: TrafficOptions): Promise<TrafficStats> {
  checkTrafficOptions(options);
  const { rate, seed, signal } = options;
  const random = seededRandom(seed);
  const pending = new DueQueue();
  const stats: TrafficStats = {
    inserts: 0,
    completions: 0,
    lateRows: 0,
    errors: 0,
    writes: 0,
    elapsedMs: 0,
    running: 0,
  };
  let client: PoolClient | undefined = await openSession(pool);
  let workspaces: number;
  try {
    workspaces = options.workspaces ?? (await resolveWorkspaces(client, seed));
    const adopted = await client.query<{ id: number; started_ms: number }>(adoptRunning);
    for (const row of adopted.rows) {
      const outcome = drawOutcome(random);
      const duration = outcome === 'timeout' ? 600_000 : drawDurationMs(random);
      pending.push({ id: row.id, dueAt: row.started_ms + duration, outcome });
    }
  } catch (error) {
    client.release(true);
    throw error;
  }
  const users = options.users ?? workspaces * 10;
  if (users < workspaces) {
    client.release(true);
    throw new WorkloadOptionError('users', `at least the ${workspaces} workspaces of the data set`, users);
  }

  const startedAt = performance.now();
  const deadline =
    options.durationSeconds === undefined ? Infinity : startedAt + options.durationSeconds * 1000;
  const burst = Math.max(1, rate * CATCH_UP_SECONDS);
  let failures = 0;
  /** Writes done or given up: the loop aims at `rate` × elapsed of them. */
  let accounted = 0;
  try {
    while (signal?.aborted !== true && performance.now() < deadline) {
      const target = Math.floor((rate * (performance.now() - startedAt)) / 1000);
      // After a stall (an outage, a slow statement) at most one second of writes is caught up.
      accounted = Math.max(accounted, target - burst);
      const budget = target - accounted;
      if (budget > 0) {
        const due = pending.takeDue(Date.now(), budget);
        const plan = split(budget - due.length, random);
        const lateExecutions = Math.ceil(plan.late / 2);
        try {
          client ??= await openSession(pool);
          const { rows } = await client.query<TickRow>(trafficTick, [
            Math.floor(random() * 2_147_483_647),
            plan.start,
            due.map((p) => p.id),
            due.map((p) => p.outcome),
            plan.activity,
            plan.credits,
            lateExecutions,
            plan.late - lateExecutions,
            workspaces,
            users,
          ]);
          const row = rows[0];
          if (row === undefined) throw new Error('the traffic statement returned no row');
          const now = Date.now();
          for (const id of row.started_ids) {
            const outcome = drawOutcome(random);
            const duration = outcome === 'timeout' ? 600_000 : drawDurationMs(random);
            pending.push({ id, dueAt: now + duration, outcome });
          }
          stats.inserts += row.started_ids.length + plan.activity + row.credited;
          stats.completions += row.completed;
          stats.lateRows += row.late_executions + (row.activity - plan.activity);
          failures = 0;
        } catch (error) {
          for (const p of due) pending.push(p);
          stats.errors += 1;
          stats.lastError = error instanceof Error ? error.message : String(error);
          client?.release(true);
          client = undefined;
          failures += 1;
          // The failed tick's budget is given up rather than retried in a burst.
          accounted += budget;
        }
        const writes = stats.inserts + stats.completions + stats.lateRows;
        accounted += writes - stats.writes;
        stats.writes = writes;
      }
      stats.running = pending.size;
      stats.elapsedMs = Math.round(performance.now() - startedAt);
      options.onTick?.({ ...stats });
      const pause = failures > 0 ? Math.min(5000, 250 * 2 ** (failures - 1)) : TICK_MS;
      await sleep(Math.min(pause, Math.max(0, deadline - performance.now())), undefined, { signal }).catch(
        () => undefined,
      );
    }
  } finally {
    // The session carries the workload's functions and settings: close it, do not pool it.
    client?.release(true);
  }
  stats.running = pending.size;
  stats.elapsedMs = Math.round(performance.now() - startedAt);
  return { ...stats };
}
