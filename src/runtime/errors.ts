import { RefreshAbortedError } from '../rollups/index.ts';
import { InvalidTaskArgsError } from '../tasks/index.ts';

/** An error as it crosses a thread boundary or lands in task_runs.error. */
export interface ErrorInfo {
  name: string;
  message: string;
  stack?: string;
  /** SQLSTATE or Node error code. */
  code?: string;
  /** Worth retrying: the connection was lost, a serialization failure, a deadlock. */
  transient: boolean;
  /** The task stopped because it was asked to (soft limit, terminate, shutdown). */
  aborted: boolean;
  /** A result the task attached to its error (a backfill with failed windows). */
  result?: unknown;
}

const TRANSIENT_SQLSTATES = new Set(['40001', '40P01', '57P01', '57P02', '57P03', '55P03']);
const TRANSIENT_NODE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * Transient: SQLSTATE class 08 (connection exception), 57P0x (server shutting down or restarting),
 * 40001/40P01 (serialization failure, deadlock), 55P03 (lock not available: lock_timeout), and lost
 * sockets. Everything else is a bug or bad data: retrying would fail the same way.
 */
export function isTransient(error: unknown): boolean {
  if (error instanceof InvalidTaskArgsError) return false;
  const code =
    typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
  if (
    code !== undefined &&
    (code.startsWith('08') || TRANSIENT_SQLSTATES.has(code) || TRANSIENT_NODE_CODES.has(code))
  ) {
    return true;
  }
  const text = error instanceof Error ? error.message : String(error);
  return /Connection terminated unexpectedly|connection (?:is )?closed|Client has encountered a connection error/i.test(
    text,
  );
}

export function toErrorInfo(error: unknown, aborted: boolean): ErrorInfo {
  const e = error instanceof Error ? error : new Error(String(error));
  const code = 'code' in e && e.code !== undefined ? String(e.code) : undefined;
  const result = 'result' in e ? (e as { result: unknown }).result : undefined;
  return {
    name: e.name,
    message: e.message,
    stack: e.stack,
    code,
    transient: !aborted && isTransient(e),
    aborted: aborted || e instanceof RefreshAbortedError || e.name === 'AbortError',
    ...(result === undefined ? {} : { result }),
  };
}

/** Exponential backoff: `base`, 2×, 4×… capped at an hour, with ±10 % jitter so retries spread out. */
export function backoffDelayMs(attempt: number, baseMs: number, random: () => number = Math.random): number {
  const raw = Math.min(baseMs * 2 ** Math.max(0, attempt - 1), 3_600_000);
  return Math.round(raw * (0.9 + 0.2 * random()));
}
