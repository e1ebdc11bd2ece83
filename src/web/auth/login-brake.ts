import type { Logger } from '../../log/index.ts';

/**
 * How many wrong credentials one client address may send in a window before it is slowed down,
 * and how. Ten mistakes are a person; 300 in 3.7 s (issue 15) are a script. After the tenth failure
 * in a window, each further failure locks the address out for twice as long as the one before
 * (1 s, 2 s, 4 s, … up to 15 minutes): a script gets a handful of guesses an hour, a person who
 * mistyped waits seconds.
 */
export const LOGIN_BRAKE = {
  freeFailures: 10,
  windowMs: 15 * 60_000,
  maxLockMs: 15 * 60_000,
  /**
   * Addresses remembered at once; past it, those whose window and lock are over are forgotten,
   * then the oldest.
   */
  maxAddresses: 10_000,
} as const;

interface AddressState {
  failures: number;
  windowStart: number;
  lockedUntil: number;
  logged: boolean;
}

export interface LoginBrake {
  /** Seconds the address must still wait before it may try again, or 0. */
  retryAfterSeconds(address: string): number;
  failed(address: string): void;
  succeeded(address: string): void;
}

/** `now` is the clock in milliseconds (a seam for tests: Date.now by default). */
export function createLoginBrake(logger: Logger, now: () => number = Date.now): LoginBrake {
  const states = new Map<string, AddressState>();
  const current = (address: string, t: number): AddressState | undefined => {
    const state = states.get(address);
    if (state !== undefined && t >= state.lockedUntil && t - state.windowStart >= LOGIN_BRAKE.windowMs) {
      states.delete(address);
      return undefined;
    }
    return state;
  };
  const forgetExpired = (t: number): void => {
    for (const address of states.keys()) current(address, t);
  };
  return {
    retryAfterSeconds(address) {
      const t = now();
      const state = current(address, t);
      return state === undefined || t >= state.lockedUntil ? 0 : Math.ceil((state.lockedUntil - t) / 1000);
    },
    failed(address) {
      const t = now();
      let state = current(address, t);
      if (state === undefined) {
        if (states.size >= LOGIN_BRAKE.maxAddresses) forgetExpired(t);
        // Still full (many addresses failing at once): the oldest is forgotten, so memory stays
        // bounded whatever the number of addresses (an IPv6 client has plenty).
        if (states.size >= LOGIN_BRAKE.maxAddresses) {
          const oldest = states.keys().next();
          if (oldest.done !== true) states.delete(oldest.value);
        }
        state = { failures: 0, windowStart: t, lockedUntil: 0, logged: false };
        states.set(address, state);
      }
      state.failures += 1;
      const excess = state.failures - LOGIN_BRAKE.freeFailures;
      if (excess <= 0) return;
      const lockMs = Math.min(LOGIN_BRAKE.maxLockMs, 1000 * 2 ** Math.min(excess - 1, 30));
      state.lockedUntil = t + lockMs;
      // The failures are forgotten a window after the lock ends, not before: a script that waits
      // out each lock still finds the next one twice as long.
      state.windowStart = state.lockedUntil;
      if (!state.logged) {
        state.logged = true;
        logger.warn(
          { address, failures: state.failures, windowMinutes: LOGIN_BRAKE.windowMs / 60_000 },
          `dashboard: ${state.failures} failed logins from ${address}: each further failure locks it out for longer (429)`,
        );
      }
    },
    succeeded(address) {
      states.delete(address);
    },
  };
}
