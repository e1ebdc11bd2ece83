import pg from 'pg';
import { aggjobsTypes, hearConnectionErrors, sessionStyles, sessionStylesHook } from '../db/index.ts';
import { runApplicationName } from './thread-protocol.ts';

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
 *
 * And a run that is no longer its attempt's (taken over by another worker after this one stalled,
 * or settled by the reaper) gets no session it has not named yet: the round trip that names a
 * session also reads, after the name is visible, whether `aggjobs.task_runs` still has this attempt
 * running. A takeover commits the new attempt, then kills the sessions named for the run: a session
 * named before that commit is killed, one named after it sees the new attempt and is refused. So a
 * stalled worker that wakes up cannot commit its attempt's work on a session opened after the
 * takeover (its other sessions were killed).
 */
export class RunSessionPool extends pg.Pool {
  #session = idleSessionName;
  /** The attempt whose sessions the pool serves now (undefined between runs). */
  #run: { runId: string; attempt: number } | undefined;
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
      onConnect: sessionStylesHook,
    });
    hearConnectionErrors(this);
  }

  /** Every checkout from now on serves this attempt of a run, named for it (runApplicationName). */
  serveRun(run: { runId: string; attempt: number }): void {
    this.#run = run;
    this.#session = runApplicationName(run.runId, run.attempt);
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
      let owned = true;
      try {
        // The name first, then (same round trip, later statement) whether the attempt is still running.
        const name = `SELECT set_config('application_name', ${client.escapeLiteral(session)}, false)`;
        const run = this.#run;
        const fence =
          run === undefined
            ? ''
            : `; SELECT EXISTS (SELECT FROM aggjobs.task_runs WHERE id = ${client.escapeLiteral(run.runId)}
                 AND attempts = ${Number(run.attempt)} AND state = 'running') AS owned`;
        // A session that served another run: what that run left in it (settings, a role, session
        // advisory locks, temporary tables, open cursors, LISTENs) goes first, in the same round
        // trip as the name. Not DEALLOCATE: pg keeps its own record of prepared statements.
        const reset =
          previous === undefined
            ? ''
            : `RESET ALL; ${sessionStyles}; CLOSE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES; `;
        const results = (await client.query(`${reset}${name}${fence}`)) as unknown as
          pg.QueryResult | pg.QueryResult[];
        const last = Array.isArray(results) ? results.at(-1) : results;
        if (run !== undefined) owned = (last?.rows[0] as { owned?: boolean } | undefined)?.owned === true;
      } catch (error) {
        // A session whose name is unknown must not serve the run: it is closed.
        client.release(error instanceof Error ? error : new Error(String(error)));
        if (previous !== undefined && tries < (this.options.max ?? 10)) continue;
        throw error;
      }
      if (!owned) {
        // The session is sound: back to the pool, not recorded as named for the run, so that every
        // later checkout for this attempt asks again.
        client.release();
        throw new Error(
          `run ${this.#run?.runId} attempt ${this.#run?.attempt} is no longer this worker's (another worker took it over, or it was settled): it gets no database session`,
        );
      }
      this.#names.set(client, session);
      refuse();
      return client;
    }
  }
}
