import { Semaphore } from './semaphore.ts';

/** What JobSlots sees of a BullMQ Worker: how many slots it holds, and its fetch limit. */
export interface SlotHolder {
  /** Slots this Worker holds: jobs it fetched and has not finished, and fetches under way. */
  reserved: number;
  /** BullMQ's own limit on what the Worker fetches (its `concurrency` setter). */
  concurrency: number;
}

/**
 * A worker process's task slots, shared by its BullMQ Workers (one per queue). BullMQ's loop fetches
 * while a Worker holds fewer jobs than its `concurrency`, and awaits each fetch before it starts the
 * jobs it already holds. So a fetch must never wait for a slot while its Worker holds jobs, and a
 * Worker must not try to fetch when no slot is free: every change of the free count sets each
 * Worker's `concurrency` to what it holds plus what is free (at least 1: a Worker that holds nothing
 * keeps one fetch waiting here for a slot).
 */
export class JobSlots {
  private readonly semaphore: Semaphore;
  private readonly holders = new Set<SlotHolder>();

  constructor(size: number) {
    this.semaphore = new Semaphore(size);
  }

  get size(): number {
    return this.semaphore.size;
  }

  get inUse(): number {
    return this.semaphore.inUse;
  }

  register(holder: SlotHolder): void {
    this.holders.add(holder);
    this.rebalance();
  }

  unregister(holder: SlotHolder): void {
    this.holders.delete(holder);
  }

  /** A slot for `holder`: waits when it holds none, refuses at once when it holds some. */
  async take(holder: SlotHolder): Promise<boolean> {
    const taken = holder.reserved > 0 ? this.semaphore.tryAcquire() : await this.semaphore.acquire();
    if (taken) holder.reserved += 1;
    this.rebalance();
    return taken;
  }

  /**
   * Whether a slot whose job ends may pass straight to the next job of the same Worker (BullMQ
   * fetches it in the same call that completes the job: one round trip instead of two): only when
   * no other Worker waits for a slot, the slots are open, and none is over the size (a resize down
   * takes slots back as they are given).
   */
  mayHandOver(): boolean {
    const s = this.semaphore;
    return !s.isClosed && s.waiting === 0 && s.inUse <= s.size;
  }

  give(holder: SlotHolder): void {
    holder.reserved -= 1;
    this.semaphore.release();
    this.rebalance();
  }

  resize(size: number): void {
    this.semaphore.resize(size);
    this.rebalance();
  }

  /** Nothing more is taken: waiting and later takes are refused (shutdown). */
  close(): void {
    this.semaphore.close();
  }

  private rebalance(): void {
    const free = Math.max(0, this.semaphore.size - this.semaphore.inUse);
    for (const holder of this.holders) holder.concurrency = Math.max(1, holder.reserved + free);
  }
}
