import pg from 'pg';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
/** Anything that can run a query: a pool or one checked-out client. */
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

/**
 * The type parsers of aggjobs' own connections: bigint (int8) and numeric come back as strings by
 * default; numeric stays an exact string, but counts (int8) are read as numbers — every count
 * aggjobs reads is far below 2^53. Only these pools: pg's global parsers, which a program that
 * imports aggjobs shares, are left as they are.
 */
export const aggjobsTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 && format !== 'binary'
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * What every aggjobs session sets before anything else runs on it: node-postgres reads timestamps,
 * dates and intervals in PostgreSQL's default output styles only. Under a DateStyle such as
 * 'SQL, DMY' (set for the server, a database or a role) every timestamp aggjobs read came back null
 * (pg 8.23), and the run log, the dashboard and the engine's windows with it.
 */
export const sessionStyles = "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'";

/** Sets `sessionStyles` on a new connection. */
async function setSessionStyles(client: pg.ClientBase): Promise<void> {
  await client.query(sessionStyles);
}

/**
 * pg-pool's `onConnect` for aggjobs' pools: `setSessionStyles`, awaited before the connection serves
 * its first caller (a failure fails that checkout). pg-pool 3.14 awaits the promise the hook
 * returns (`_promiseTry(() => this.options.onConnect(client))`); @types/pg still types the hook as
 * returning void, hence the cast, here only. (A query sent from the pool's 'connect' event instead
 * queued the caller's first query behind it, which pg 8.23 warns is deprecated.)
 */
export const sessionStylesHook = setSessionStyles as (client: pg.ClientBase) => void;

/**
 * Listens for connection errors of `pool` that nobody else hears. pg-pool listens for 'error' on
 * idle clients only: it removes that listener while a client is checked out, so a connection killed
 * under a running query (pg_terminate_backend, a failover) emitted an 'error' nobody heard — an
 * uncaught exception that ended the task thread. The same error also rejects the query in flight
 * (57P01 or "Connection terminated unexpectedly"), which is where callers see it; the dead client is
 * dropped by the pool when it is released. An idle client that loses its server (restart, admin
 * kill) emits on the pool, which replaces it.
 */
export function hearConnectionErrors(pool: pg.Pool): void {
  pool.on('error', () => undefined);
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
}

export interface PoolOptions {
  connectionString: string;
  max: number;
  applicationName?: string;
}

/** A pool with a hard connection limit; the application name shows in `pg_stat_activity`. */
export function createPool(options: PoolOptions): Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max,
    application_name: options.applicationName ?? 'aggjobs',
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
    types: aggjobsTypes,
    onConnect: sessionStylesHook,
  });
  hearConnectionErrors(pool);
  return pool;
}

/**
 * Gives a checked-out client back to its pool, or closes it when `failure` is set: a client whose
 * clean-up statement (ROLLBACK, unlock, RESET) failed has lost its connection, or holds a session in
 * a state nobody knows (a lock, a setting), and must not serve the next caller.
 */
export function releaseClient(client: PoolClient, failure: unknown): void {
  if (failure === undefined) client.release();
  else client.release(failure instanceof Error ? failure : new Error(String(failure)));
}
