import { inTransaction, type Pool, type PoolClient, type Queryable } from '../db/index.ts';
import { checkSeedOptions, type SeedOptions } from './seed-options.ts';
import {
  completeDayExecutions,
  createDayExecutions,
  generateDayExecutions,
  insertDayActivity,
  insertDayCredits,
  insertDayExecutions,
  insertWorkspaces,
} from './seed-sql.ts';
import { installSessionFunctions } from './session-functions.ts';

export interface SeedResult {
  executions: number;
  activityEvents: number;
  creditTransactions: number;
  durationMs: number;
  /** Rows of the three tables per second of `durationMs`. */
  rowsPerSecond: number;
}

/** `done` and `total` count executions; `phase` says what is being written. */
export interface SeedProgress {
  done: number;
  total: number;
  phase: string;
}

const DAY_MS = 86_400_000;

/** True when `public.execution_logs` has rows: a database that must not be seeded again. */
export async function isDemoSeeded(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ seeded: boolean }>(
    'SELECT EXISTS (SELECT 1 FROM public.execution_logs) AS seeded',
  );
  return rows[0]?.seeded === true;
}

async function rowCount(client: PoolClient, sql: string, params: unknown[]): Promise<number> {
  const result = await client.query(sql, params);
  return result.rowCount ?? 0;
}

/** A session for generating rows: the workload's functions, and room for a day's sorts in memory. */
async function openSession(pool: Pool): Promise<PoolClient> {
  const client = await pool.connect();
  // A checked-out client whose server goes away (restart, pg_terminate_backend) emits 'error' when
  // it is between queries; unhandled, that would end the process. Its next query fails instead,
  // and the caller handles that.
  client.on('error', () => undefined);
  try {
    // temp_buffers must be set before the session's first temporary table. JIT compilation costs
    // more than it saves on these statements (measured: +400 ms on a 100,000-row day). Commits of a
    // demo load need not wait for the WAL flush: a crash loses whole days, which a re-run replaces.
    await client.query("SET temp_buffers = '256MB'");
    await client.query("SET work_mem = '128MB'");
    await client.query('SET jit = off');
    await client.query('SET synchronous_commit = off');
    await installSessionFunctions(client);
    return client;
  } catch (error) {
    client.release(true);
    throw error;
  }
}

/** Both lanes run; the first failure is thrown once both have stopped. */
async function both<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [ra, rb] = await Promise.allSettled([a, b]);
  if (ra.status === 'rejected') throw ra.reason;
  if (rb.status === 'rejected') throw rb.reason;
  return [ra.value, rb.value];
}

/** The executions of one day: their count and id range. */
interface DayExecutions {
  executions: number;
  firstId: number;
  lastId: number;
}

/**
 * One day of executions. The executions of the most recent day are inserted as 'running' and
 * completed by an UPDATE in a second transaction, as the application writes them; older days are
 * inserted final, because updating every row would double the load time (and to the rollups'
 * change capture an insert of a final row is the same as an insert followed by an update).
 */
async function seedDayExecutions(
  client: PoolClient,
  last: boolean,
  params: unknown[],
  sequence: string,
): Promise<DayExecutions> {
  const day = await inTransaction(client, async () => {
    await client.query('TRUNCATE workload_day_executions');
    await client.query(generateDayExecutions, [...params, sequence]);
    const executions = await rowCount(client, insertDayExecutions, [last]);
    const { rows } = await client.query<{ first: number; last: number }>(
      'SELECT min(id) AS first, max(id) AS last FROM workload_day_executions',
    );
    return { executions, firstId: rows[0]?.first ?? 0, lastId: rows[0]?.last ?? 0 };
  });
  if (last) await inTransaction(client, () => client.query(completeDayExecutions));
  return day;
}

/**
 * Loads `days` days of demo data ending at `end` (default: the current hour) into the source tables:
 * workspaces, executions, activity events and credit transactions, generated inside PostgreSQL. The
 * same options give the same rows in an empty database (ids included). Validates every option
 * before it writes anything; throws `WorkloadOptionError` naming the first bad one.
 *
 * Day by day, oldest first, so that `onProgress` moves and a failure keeps whole days. Two sessions
 * share the work when the pool allows two connections (see the lanes below).
 */
export async function seedDemoData(
  pool: Pool,
  options: SeedOptions,
  onProgress?: (progress: SeedProgress) => void,
): Promise<SeedResult> {
  const o = checkSeedOptions(options);
  const started = performance.now();
  const windowStart = new Date(o.end.getTime() - o.days * DAY_MS);
  const total = o.days * o.executionsPerDay;
  const counts = { executions: 0, activityEvents: 0, creditTransactions: 0 };
  const main = await openSession(pool);
  let side: PoolClient | undefined;
  try {
    if (pool.options.max === undefined || pool.options.max >= 2) side = await openSession(pool);
    await main.query(createDayExecutions);
    const { rows } = await main.query<{ sequence: string | null }>(
      "SELECT pg_get_serial_sequence('public.execution_logs', 'id') AS sequence",
    );
    const sequence = rows[0]?.sequence;
    if (sequence === null || sequence === undefined) {
      throw new Error('public.execution_logs.id has no sequence: it must be a bigserial column');
    }
    onProgress?.({ done: 0, total, phase: 'workspaces' });
    await main.query(insertWorkspaces, [o.workspaces, windowStart, o.seed]);

    // Lanes: one session generates each day's executions; the other writes the day's activity and
    // the credit transactions of the day before (which read that day's committed executions). Each
    // table is written by one session in order, so ids stay deterministic.
    const other = side ?? main;
    const dayParams = (day: number): unknown[] => [
      o.seed,
      day,
      o.executionsPerDay,
      windowStart,
      o.end,
      o.workspaces,
      o.users,
    ];
    const writeCredits = async (day: number, executions: DayExecutions): Promise<void> => {
      counts.creditTransactions += await inTransaction(other, () =>
        rowCount(other, insertDayCredits, [...dayParams(day), executions.firstId, executions.lastId]),
      );
    };
    let previous: { day: number; executions: DayExecutions } | undefined;
    for (let day = 0; day < o.days; day += 1) {
      onProgress?.({ done: counts.executions, total, phase: day === o.days - 1 ? 'last day' : 'history' });
      const before = previous;
      const otherLane = async (): Promise<void> => {
        counts.activityEvents += await inTransaction(other, () =>
          rowCount(other, insertDayActivity, dayParams(day)),
        );
        if (before !== undefined) await writeCredits(before.day, before.executions);
      };
      const executionLane = seedDayExecutions(main, day === o.days - 1, dayParams(day), sequence);
      const [executions] =
        side === undefined
          ? [await executionLane, await otherLane()]
          : await both(executionLane, otherLane());
      counts.executions += executions.executions;
      previous = { day, executions };
    }
    if (previous !== undefined) await writeCredits(previous.day, previous.executions);
    onProgress?.({ done: counts.executions, total, phase: 'analyze' });
    await main.query(
      'ANALYZE public.workspaces, public.execution_logs, public.user_activity_events, public.credit_transactions',
    );
    onProgress?.({ done: counts.executions, total, phase: 'done' });
  } finally {
    // The sessions carry temporary objects and settings: close them rather than hand them back.
    main.release(true);
    side?.release(true);
  }
  const durationMs = Math.round(performance.now() - started);
  const rowsTotal = counts.executions + counts.activityEvents + counts.creditTransactions;
  return {
    ...counts,
    durationMs,
    rowsPerSecond: Math.round(rowsTotal / Math.max(durationMs / 1000, 0.001)),
  };
}
