/**
 * Counts free slots; `resize` changes the limit at run time (autoscale, control); `close` turns every
 * waiting and later `acquire` into a refusal (shutdown: nothing more starts).
 */
export class Semaphore {
  private used = 0;
  private closed = false;
  private readonly waiters: Array<(taken: boolean) => void> = [];

  constructor(private limit: number) {}

  get inUse(): number {
    return this.used;
  }

  get size(): number {
    return this.limit;
  }

  /** How many `acquire` calls wait for a slot. */
  get waiting(): number {
    return this.waiters.length;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Takes a slot if one is free now; never waits. */
  tryAcquire(): boolean {
    if (this.closed || this.used >= this.limit) return false;
    this.used += 1;
    return true;
  }

  /** Resolves true with a slot taken, or false once closed. */
  async acquire(): Promise<boolean> {
    if (this.closed) return false;
    if (this.used < this.limit) {
      this.used += 1;
      return true;
    }
    return await new Promise<boolean>((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.used <= this.limit ? this.waiters.shift() : undefined;
    if (next !== undefined) next(true);
    else this.used -= 1;
  }

  resize(limit: number): void {
    this.limit = limit;
    while (this.used < this.limit && this.waiters.length > 0) {
      this.used += 1;
      this.waiters.shift()?.(true);
    }
  }

  close(): void {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter(false);
  }
}
