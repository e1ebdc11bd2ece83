import pg from 'pg';
import { aggjobsTypes } from '../db/index.ts';

/** The application_name of a task thread's sessions between runs (and after a `RESET ALL`). */
export const idleSessionName = 'aggjobs task thread';

/**
 * The pg pool of a task thread, kept across its runs: a connection costs 7–8 ms to open on this
 * project's machine, a trivial statement 0.3 ms, and a pool per run opened one for every run.
 *
 * What run-sessions.ts relies on still holds: every session a run checks out (`connect()`, and
 * `query()`, which checks out through it) carries the run's `application_name` before the run sends
 * anything on it — a session whose name is not the run's gets `set_config('application_name', …)`
 * first (one round trip the first time a run takes a given session) — so a kill finds all of an
 * attempt's sessions, and only them. A thread runs one task at a time, and the thread drops its pool
 * when a run ends with a session still checked out (see `settled`), so no session serves two runs
 * at once. Sessions open under the neutral `idleSessionName`: a `RESET ALL` or `DISCARD ALL` in a
 * task gives a session back that name, never another run's. A session that served an earlier run is
 * reset when the next run first takes it: no run inherits another's session state.
 */
export class RunSessionPool extends pg.Pool {
  #session = idleSessionName;
  /** Set when the run using this pool is killed: no checkout serves it from then on. */
  #refused: Error | undefined;
  /** The application_name each session was last given. */
  readonly #names = new WeakMap<pg.PoolClient, string>();

  constructor(options: { connectionString: string; max: number }) {
    super({
      connectionString: options.connectionString,
      max: options.max,
      application_name: idleSessionName,
      idleTimeoutMillis: 30_000,
      connectionTimeoutMillis: 10_000,
      types: aggjobsTypes,
    });
    // As in createPool (src/db/pool.ts): an idle client that loses its server emits on the pool, a
    // checked-out one on itself; the query in flight is rejected with the error either way.
    this.on('error', () => undefined);
    this.on('connect', (client) => {
      client.on('error', () => undefined);
    });
  }

  /** Names the sessions of every checkout from now on: the application_name of a run's attempt. */
  nameSessions(applicationName: string): void {
    this.#session = applicationName;
  }

  /**
   * A killed run's pool (called before its sessions are terminated): every checkout from now on
   * fails with `reason`, and so does one already under way — a session still connecting or being
   * named when the kill came closes before the run can send anything on it. Without this, such a
   * session (not yet named for the run, so not found by the kill) would carry the task's statement
   * after the run had ended. `end()` alone does not: pg-pool hands a connection that completes
   * after it to its waiting caller.
   */
  refuseCheckouts(reason: Error): void {
    this.#refused = reason;
  }

  /** No session checked out or waited for: the pool may serve another run. */
  get settled(): boolean {
    return this.totalCount === this.idleCount && this.waitingCount === 0;
  }

  override connect(): Promise<pg.PoolClient>;
  override connect(
    callback: (
      err: Error | undefined,
      client: pg.PoolClient | undefined,
      done: (release?: unknown) => void,
    ) => void,
  ): void;
  override connect(
    callback?: (
      err: Error | undefined,
      client: pg.PoolClient | undefined,
      done: (release?: unknown) => void,
    ) => void,
  ): Promise<pg.PoolClient> | void {
    const named = this.#checkOut();
    if (callback === undefined) return named;
    named.then(
      (client) => callback(undefined, client, (release?: unknown) => client.release(release as Error)),
      (error: unknown) =>
        callback(error instanceof Error ? error : new Error(String(error)), undefined, () => undefined),
    );
  }

  async #checkOut(): Promise<pg.PoolClient> {
    const session = this.#session;
    // An idle session may have been terminated by name since its last run (a takeover kills every
    // attempt of a run) before the pool noticed: it is dropped and another one taken, at most once
    // per session the pool can hold, instead of failing a run that had nothing to do with it.
    for (let tries = 0; ; tries += 1) {
      if (this.#refused !== undefined) throw this.#refused;
      const client = await super.connect();
      const refuse = (): void => {
        if (this.#refused === undefined) return;
        client.release(this.#refused);
        throw this.#refused;
      };
      refuse();
      const previous = this.#names.get(client);
      if (previous === session) return client;
      try {
        if (previous === undefined) {
          await client.query(`SELECT set_config('application_name', $1, false)`, [session]);
        } else {
          // A session that served another run: what that run left in it (settings, a role, session
          // advisory locks, temporary tables, open cursors, LISTENs) goes first, in the same round
          // trip as the name. Not DEALLOCATE: pg keeps its own record of prepared statements.
          await client.query(
            `RESET ALL; CLOSE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES;
             SELECT set_config('application_name', ${client.escapeLiteral(session)}, false)`,
          );
        }
      } catch (error) {
        // A session whose name is unknown must not serve the run: it is closed.
        client.release(error instanceof Error ? error : new Error(String(error)));
        if (previous !== undefined && tries < (this.options.max ?? 10)) continue;
        throw error;
      }
      this.#names.set(client, session);
      refuse();
      return client;
    }
  }
}
