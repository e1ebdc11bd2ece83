import type { Pool, PoolClient } from './pool.ts';

export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

/**
 * Runs `fn` inside BEGIN … COMMIT on one client, rolling back on any error.
 * `SET LOCAL` settings given in `settings` apply to this transaction only.
 */
export async function withTransaction<T>(
  pool: Pool,
  fn: (client: PoolClient) => Promise<T>,
  options: { isolation?: IsolationLevel; settings?: Record<string, string> } = {},
): Promise<T> {
  const client = await pool.connect();
  try {
    return await inTransaction(client, fn, options);
  } finally {
    client.release();
  }
}

/** Like `withTransaction`, on a client the caller already holds. */
export async function inTransaction<T>(
  client: PoolClient,
  fn: (client: PoolClient) => Promise<T>,
  options: { isolation?: IsolationLevel; settings?: Record<string, string> } = {},
): Promise<T> {
  await client.query(`BEGIN ISOLATION LEVEL ${(options.isolation ?? 'read committed').toUpperCase()}`);
  try {
    for (const [name, value] of Object.entries(options.settings ?? {})) {
      await client.query('SELECT set_config($1, $2, true)', [name, value]);
    }
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
