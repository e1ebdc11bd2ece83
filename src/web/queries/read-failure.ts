import { DASHBOARD_LOCK_TIMEOUT_MS, DASHBOARD_STATEMENT_TIMEOUT_MS } from './timed-pool.ts';

/** SQLSTATEs of a dashboard query that gave up (timed-pool.ts). */
const LOCK_NOT_AVAILABLE = '55P03';
const QUERY_CANCELED = '57014';

/** A read the dashboard gave up on: the reason, said for an operator. */
class ReadTimeoutError extends Error {
  override readonly name = 'ReadTimeoutError';
}

/**
 * Why a read failed, if it was a timeout: a lock held by another session (lock_timeout), or a
 * statement that ran too long (statement_timeout, or `waitMs` for a read outside the pool).
 */
export function readTimeoutReason(error: unknown): string | undefined {
  if (error instanceof ReadTimeoutError) return error.message;
  const code = (error as { code?: unknown } | null)?.code;
  if (code === LOCK_NOT_AVAILABLE) {
    return `another session holds a lock on a table it needs (gave up after ${DASHBOARD_LOCK_TIMEOUT_MS / 1000} s)`;
  }
  if (code === QUERY_CANCELED) {
    return `the query took longer than ${DASHBOARD_STATEMENT_TIMEOUT_MS / 1000} s`;
  }
  return undefined;
}

export type Read<T> = { ok: true; value: T } | { ok: false; what: string; reason: string };

/**
 * A read that may time out: its value, or what could not be read and why. Any other error is
 * thrown. `waitMs` bounds a read that does not go through the timed pool (the runtime's health
 * check and control): the page stops waiting, the read itself is not cancelled.
 */
export async function settle<T>(what: string, read: Promise<T>, waitMs?: number): Promise<Read<T>> {
  let timer: NodeJS.Timeout | undefined;
  const bounded =
    waitMs === undefined
      ? read
      : Promise.race([
          read,
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new ReadTimeoutError(`no answer within ${waitMs / 1000} s`)),
              waitMs,
            );
          }),
        ]);
  try {
    return { ok: true, value: await bounded };
  } catch (error: unknown) {
    const reason = readTimeoutReason(error);
    if (reason === undefined) throw error;
    return { ok: false, what, reason };
  } finally {
    clearTimeout(timer);
  }
}
