/**
 * How long a long-lived session (the control listener) waits before its next connection attempt:
 * 0.5 s, then doubling up to 10 s, for as long as the attempts fail. 10 s keeps a worker's control
 * no more than ~10 s behind a database that came back, at one connection attempt per worker per 10 s
 * while it is down.
 */
export const RECONNECT_FIRST_DELAY_MS = 500;
export const RECONNECT_MAX_DELAY_MS = 10_000;

/**
 * Delay before attempt `attempt` (1: the first after the session was lost). Jitter only shortens the
 * delay (75–100 % of it), so the cap holds and workers that lost the same server spread out.
 */
export function reconnectDelayMs(attempt: number, random: () => number = Math.random): number {
  const nominal = Math.min(RECONNECT_FIRST_DELAY_MS * 2 ** Math.max(0, attempt - 1), RECONNECT_MAX_DELAY_MS);
  return Math.round(nominal * (0.75 + 0.25 * random()));
}
