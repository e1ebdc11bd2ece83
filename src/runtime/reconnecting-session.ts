import { reconnectDelayMs } from './reconnect-backoff.ts';

/**
 * Keeps one long-lived database session open (the control listener's LISTEN): when it is lost —
 * killed, server restarted, or silently dead — it is opened again, with backoff, for as long as the
 * keeper is not closed. One connection attempt at a time: a loss reported while an attempt is under
 * way or scheduled changes nothing.
 */
export interface SessionSpec<S> {
  /** Connects and prepares a session; calls `lost` (any number of times) when it dies later. */
  open(lost: (error: unknown) => void): Promise<S>;
  /** Closes a session; must not throw. */
  close(session: S): Promise<void>;
  /** A cheap round trip (SELECT 1): a session that does not answer is treated as lost. */
  ping(session: S): Promise<unknown>;
  /** Each loss and each failed attempt. */
  onError(error: unknown): void;
  /** The session is open again after a loss. */
  onReconnect?(): void;
  /**
   * Why ping at all: a LISTEN session receives and never sends, so a connection that died without a
   * FIN or RST (a NAT or firewall dropping it, a host gone) is never noticed otherwise, and the
   * messages meant for it are lost. 15 s, answered within 10 s, notices such a loss within ~25 s.
   */
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  /** Delay before reconnection attempt n (1-based); the default doubles from 0.5 s to 10 s. */
  delayMs?(attempt: number): number;
}

export interface SessionKeeper<S> {
  /** The open session, if any. */
  readonly session: S | undefined;
  close(): Promise<void>;
}

export class SessionLostError extends Error {
  override readonly name = 'SessionLostError';
}

/** Opens the session (rejects when this first attempt fails), then keeps it open until `close()`. */
export async function keepSessionOpen<S>(spec: SessionSpec<S>): Promise<SessionKeeper<S>> {
  const pingIntervalMs = spec.pingIntervalMs ?? 15_000;
  const pingTimeoutMs = spec.pingTimeoutMs ?? 10_000;
  const delayMs = spec.delayMs ?? ((n: number) => reconnectDelayMs(n));
  let session: S | undefined;
  let closed = false;
  let attempt: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let pingTimer: NodeJS.Timeout | undefined;
  let failures = 0;

  const lose = (lost: S, error: unknown): void => {
    // Sessions already replaced or dropped report their end too (pg emits 'error' more than once).
    if (lost !== session) return;
    session = undefined;
    clearInterval(pingTimer);
    spec.onError(error);
    void spec.close(lost);
    scheduleAttempt();
  };

  const open = async (): Promise<S> => {
    // Losses reported while `spec.open` was still preparing the session (after connect, before
    // LISTEN answered): the session is dead before it was ever used.
    const early: unknown[] = [];
    const opened: { session?: S } = {};
    const s = await spec.open((error) => {
      if (opened.session === undefined) early.push(error);
      else lose(opened.session, error);
    });
    opened.session = s;
    if (early.length > 0) {
      await spec.close(s);
      throw early[0];
    }
    return s;
  };

  const adopt = (s: S): void => {
    session = s;
    failures = 0;
    pingTimer = setInterval(() => void ping(s), pingIntervalMs);
  };

  let pinging = false;
  const ping = async (s: S): Promise<void> => {
    if (pinging || s !== session) return;
    pinging = true;
    let timeout: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        spec.ping(s),
        new Promise((_, reject) => {
          timeout = setTimeout(
            () =>
              reject(new SessionLostError(`the session did not answer a ping within ${pingTimeoutMs} ms`)),
            pingTimeoutMs,
          );
        }),
      ]);
    } catch (error) {
      lose(s, error);
    } finally {
      clearTimeout(timeout);
      pinging = false;
    }
  };

  const scheduleAttempt = (): void => {
    if (closed || session !== undefined || attempt !== undefined || retryTimer !== undefined) return;
    retryTimer = setTimeout(
      () => {
        retryTimer = undefined;
        attempt = reopen().finally(() => {
          attempt = undefined;
          scheduleAttempt();
        });
      },
      delayMs(failures + 1),
    );
  };

  const reopen = async (): Promise<void> => {
    let s: S;
    try {
      s = await open();
    } catch (error) {
      failures += 1;
      spec.onError(error);
      return;
    }
    if (closed) {
      await spec.close(s);
      return;
    }
    adopt(s);
    spec.onReconnect?.();
  };

  adopt(await open());
  return {
    get session() {
      return session;
    },
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      clearInterval(pingTimer);
      await attempt;
      const s = session;
      session = undefined;
      if (s !== undefined) await spec.close(s);
    },
  };
}
