import { releaseClient, type Pool, type PoolClient } from './pool.ts';

export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

interface TransactionOptions {
  isolation?: IsolationLevel;
  settings?: Record<string, string>;
}

/**
 * Runs `fn` inside BEGIN … COMMIT on one client, rolling back on any error.
 * `SET LOCAL` settings given in `settings` apply to this transaction only.
 */
export async function withTransaction<T>(
  pool: Pool,
  fn: (client: PoolClient) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  const client = await pool.connect();
  let broken: unknown;
  try {
    return await transact(client, fn, options, (error) => {
      broken = error;
    });
  } finally {
    releaseClient(client, broken);
  }
}

/** Like `withTransaction`, on a client the caller already holds. */
export async function inTransaction<T>(
  client: PoolClient,
  fn: (client: PoolClient) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  return await transact(client, fn, options, () => undefined);
}

/**
 * The transaction itself. BEGIN and ROLLBACK do not fail on a healthy session: when one does, the
 * session is gone (killed, server restarted) or in an unknown state, and `onBroken` tells whoever
 * owns the client. A failed ROLLBACK is not the caller's error — the one that made us roll back is.
 */
async function transact<T>(
  client: PoolClient,
  fn: (client: PoolClient) => Promise<T>,
  options: TransactionOptions,
  onBroken: (error: unknown) => void,
): Promise<T> {
  try {
    await client.query(`BEGIN ISOLATION LEVEL ${(options.isolation ?? 'read committed').toUpperCase()}`);
  } catch (error) {
    onBroken(error);
    throw error;
  }
  try {
    for (const [name, value] of Object.entries(options.settings ?? {})) {
      await client.query('SELECT set_config($1, $2, true)', [name, value]);
    }
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(onBroken);
    throw error;
  }
}
