import { inTransaction, releaseClient, type Pool, type PoolClient } from '../db/index.ts';
import type { RollupDefinition } from './definition.ts';

/**
 * The session of a refresh or rebuild of one rollup: a pooled connection holding the rollup's
 * advisory lock, cancelled when the run's signal aborts, with one REPEATABLE READ transaction.
 */

/** Thrown when a refresh was aborted through its signal (soft time limit, revoke). */
export class RefreshAbortedError extends Error {
  override readonly name = 'RefreshAbortedError';
}

async function cancelOnAbort(
  pool: Pool,
  client: PoolClient,
  signal: AbortSignal | undefined,
): Promise<() => void> {
  if (signal === undefined) return () => undefined;
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const pid = rows[0]?.pid;
  const onAbort = (): void => {
    void pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

interface RollupSession {
  readonly client: PoolClient;
  /** Stops cancelling on the signal and gives the session back (releaseRollupSession). */
  release(): Promise<void>;
}

/**
 * Runs `fn` in a REPEATABLE READ transaction on the session of a refresh or rebuild of `def`
 * (openRollupSession): committed when `fn` returns, rolled back when it throws. A throw after
 * `signal` aborted is a RefreshAbortedError saying nothing was written.
 */
export async function inRollupTransaction<T>(
  pool: Pool,
  def: RollupDefinition,
  what: 'refresh' | 'rebuild',
  options: { signal?: AbortSignal; lockTimeoutMs?: number },
  fn: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const session = await openRollupSession(pool, def, what, options);
  try {
    return await inTransaction(session.client, fn, { isolation: 'repeatable read' });
  } catch (error) {
    if (options.signal?.aborted === true) {
      throw new RefreshAbortedError(`${what} of ${def.name} aborted: nothing was written`, { cause: error });
    }
    throw error;
  } finally {
    await session.release();
  }
}

/**
 * Opens the session of a refresh or rebuild of `def`: a pooled connection, cancelled when `signal`
 * aborts, holding the rollup's advisory lock (waiting at most lockTimeoutMs). The lock and the lock
 * timeout take one round trip: on a new hour the statements around a refresh cost as much as the
 * refresh itself (bench/report.md, Engine). On failure the session is given back before the throw.
 */
async function openRollupSession(
  pool: Pool,
  def: RollupDefinition,
  what: 'refresh' | 'rebuild',
  options: { signal?: AbortSignal; lockTimeoutMs?: number },
): Promise<RollupSession> {
  const client = await pool.connect();
  let releaseCancel = (): void => undefined;
  let locked = false;
  let previousLockTimeout: string | undefined;
  const release = async (): Promise<void> => {
    releaseCancel();
    await releaseRollupSession(client, def.name, locked, previousLockTimeout);
  };
  try {
    releaseCancel = await cancelOnAbort(pool, client, options.signal);
    if (options.signal?.aborted === true) throw new RefreshAbortedError(`${what} of ${def.name} aborted`);
    // $1 lock timeout, $2 rollup
    const { rows } = await client.query<{ previous: string }>(
      `SELECT current_setting('lock_timeout') AS previous, set_config('lock_timeout', $1, false),
              pg_advisory_lock(hashtext('aggjobs.rollup'), hashtext($2))`,
      [String(options.lockTimeoutMs ?? 30_000), def.name],
    );
    previousLockTimeout = rows[0]?.previous;
    locked = true;
    return { client, release };
  } catch (error) {
    await release();
    if (options.signal?.aborted === true && !(error instanceof RefreshAbortedError)) {
      throw new RefreshAbortedError(`${what} of ${def.name} aborted: nothing was written`, { cause: error });
    }
    throw error;
  }
}

/**
 * Gives back the session of a refresh or rebuild: unlocks the rollup's advisory lock (when it was
 * taken) and sets the lock timeout back to `previousLockTimeout` (the session's value before the
 * refresh set its own), or resets it when that is unknown. One round trip. A session that cannot
 * (killed, server gone) is closed, not pooled.
 */
async function releaseRollupSession(
  client: PoolClient,
  rollup: string,
  locked: boolean,
  previousLockTimeout?: string,
): Promise<void> {
  let broken: unknown;
  const keep = (error: unknown): void => {
    broken ??= error;
  };
  if (previousLockTimeout === undefined) {
    if (locked)
      await client
        .query("SELECT pg_advisory_unlock(hashtext('aggjobs.rollup'), hashtext($1))", [rollup])
        .catch(keep);
    await client.query('RESET lock_timeout').catch(keep);
  } else {
    // $1 rollup, $2 whether it was locked, $3 the lock timeout to restore
    await client
      .query(
        `SELECT CASE WHEN $2::boolean THEN pg_advisory_unlock(hashtext('aggjobs.rollup'), hashtext($1)) END,
                set_config('lock_timeout', $3, false)`,
        [rollup, locked, previousLockTimeout],
      )
      .catch(keep);
  }
  releaseClient(client, broken);
}
