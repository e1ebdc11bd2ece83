import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { keepSessionOpen, type SessionSpec } from './reconnecting-session.ts';

/** A fake server: each `open` takes 100 ms and fails while `down`; sessions die when told to. */
function fakeServer() {
  const state = {
    down: false,
    opens: 0,
    inFlight: 0,
    maxInFlight: 0,
    /** Sessions stop answering pings (a connection that died silently). */
    silent: false,
    errors: [] as unknown[],
    reconnects: 0,
    sessions: [] as Array<{ id: number; closed: boolean; kill: (e: unknown) => void }>,
  };
  const spec: SessionSpec<{ id: number; closed: boolean; kill: (e: unknown) => void }> = {
    async open(lost) {
      state.opens += 1;
      state.inFlight += 1;
      state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
      try {
        await new Promise((r) => setTimeout(r, 100));
        if (state.down) throw new Error('connection refused');
        const s = { id: state.opens, closed: false, kill: lost };
        state.sessions.push(s);
        return s;
      } finally {
        state.inFlight -= 1;
      }
    },
    async close(s) {
      s.closed = true;
    },
    ping: (s) => (state.silent || s.closed ? new Promise(() => undefined) : Promise.resolve(1)),
    onError: (e) => state.errors.push(e),
    onReconnect: () => (state.reconnects += 1),
    pingIntervalMs: 15_000,
    pingTimeoutMs: 10_000,
    delayMs: (n) => [500, 1000, 2000, 4000][n - 1] ?? 10_000,
  };
  return { state, spec };
}

describe('keepSessionOpen', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('reopens a lost session with backoff until an attempt succeeds, one attempt at a time', async () => {
    const { state, spec } = fakeServer();
    const opening = keepSessionOpen(spec);
    await vi.advanceTimersByTimeAsync(100);
    const keeper = await opening;
    expect(keeper.session?.id).toBe(1);

    state.down = true;
    state.sessions[0]?.kill(new Error('terminated'));
    state.sessions[0]?.kill(new Error('Connection terminated unexpectedly')); // pg reports twice
    expect(keeper.session).toBeUndefined();
    // Attempts at +0.5 s, then +1 s, +2 s, +4 s after each failure (each attempt takes 0.1 s).
    await vi.advanceTimersByTimeAsync(500 + 100 + 1000 + 100 + 2000 + 100);
    expect(state.opens).toBe(4);
    expect(state.errors).toHaveLength(4); // the loss, then three refused attempts
    state.down = false;
    await vi.advanceTimersByTimeAsync(4000 + 100);
    expect(state.opens).toBe(5);
    expect(keeper.session?.id).toBe(5);
    expect(state.reconnects).toBe(1);
    expect(state.maxInFlight).toBe(1);

    // After a success, the next loss starts from the first delay again.
    state.sessions[1]?.kill(new Error('terminated'));
    await vi.advanceTimersByTimeAsync(600);
    expect(keeper.session?.id).toBe(6);
    expect(state.reconnects).toBe(2);
    await keeper.close();
  });

  it('reports a loss during an attempt once, without a second attempt', async () => {
    const { state, spec } = fakeServer();
    const opening = keepSessionOpen(spec);
    await vi.advanceTimersByTimeAsync(100);
    const keeper = await opening;
    state.sessions[0]?.kill(new Error('terminated'));
    await vi.advanceTimersByTimeAsync(550); // attempt 2 under way
    state.sessions[0]?.kill(new Error('late report of the old session'));
    await vi.advanceTimersByTimeAsync(50);
    expect(state.opens).toBe(2);
    expect(state.maxInFlight).toBe(1);
    expect(state.errors).toHaveLength(1);
    expect(keeper.session?.id).toBe(2);
    await keeper.close();
  });

  it('treats a session that does not answer its ping as lost', async () => {
    const { state, spec } = fakeServer();
    const opening = keepSessionOpen(spec);
    await vi.advanceTimersByTimeAsync(100);
    const keeper = await opening;
    await vi.advanceTimersByTimeAsync(30_000); // two answered pings
    expect(keeper.session?.id).toBe(1);
    state.silent = true;
    await vi.advanceTimersByTimeAsync(15_000 + 10_000);
    expect(String(state.errors[0])).toMatch(/did not answer a ping within 10000 ms/);
    expect(state.sessions[0]?.closed).toBe(true);
    state.silent = false;
    await vi.advanceTimersByTimeAsync(600);
    expect(keeper.session?.id).toBe(2);
    expect(state.reconnects).toBe(1);
    await keeper.close();
  });

  it('stops for good once closed, even with an attempt under way', async () => {
    const { state, spec } = fakeServer();
    const opening = keepSessionOpen(spec);
    await vi.advanceTimersByTimeAsync(100);
    const keeper = await opening;
    state.sessions[0]?.kill(new Error('terminated'));
    await vi.advanceTimersByTimeAsync(550);
    const closing = keeper.close();
    await vi.advanceTimersByTimeAsync(100);
    await closing;
    expect(state.sessions[1]?.closed).toBe(true); // opened during close: closed, not kept
    await vi.advanceTimersByTimeAsync(60_000);
    expect(state.opens).toBe(2);
    expect(keeper.session).toBeUndefined();
  });

  it('rejects when the first attempt fails', async () => {
    const { state, spec } = fakeServer();
    state.down = true;
    const opening = keepSessionOpen(spec);
    const outcome = expect(opening).rejects.toThrow('connection refused');
    await vi.advanceTimersByTimeAsync(100);
    await outcome;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(state.opens).toBe(1);
  });
});
