/** Counts free slots; `resize` changes the limit at run time (autoscale, control). */
export class Semaphore {
  private used = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(private limit: number) {}

  get inUse(): number {
    return this.used;
  }

  get size(): number {
    return this.limit;
  }

  async acquire(): Promise<void> {
    if (this.used < this.limit) {
      this.used += 1;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.used <= this.limit ? this.waiters.shift() : undefined;
    if (next !== undefined) next();
    else this.used -= 1;
  }

  resize(limit: number): void {
    this.limit = limit;
    while (this.used < this.limit && this.waiters.length > 0) {
      this.used += 1;
      this.waiters.shift()?.();
    }
  }
}
