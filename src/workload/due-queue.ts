/** An execution that traffic started and will complete at `dueAt` (epoch milliseconds). */
export interface PendingExecution {
  id: number;
  dueAt: number;
  outcome: string;
}

/** Pending executions ordered by due time (a binary min-heap). */
export class DueQueue {
  readonly #heap: PendingExecution[] = [];

  get size(): number {
    return this.#heap.length;
  }

  push(item: PendingExecution): void {
    const heap = this.#heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as PendingExecution;
      if (p.dueAt <= item.dueAt) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = item;
  }

  /** Removes and returns up to `limit` items due at or before `now`, earliest first. */
  takeDue(now: number, limit: number): PendingExecution[] {
    const taken: PendingExecution[] = [];
    while (taken.length < limit) {
      const top = this.#heap[0];
      if (top === undefined || top.dueAt > now) break;
      taken.push(this.#pop());
    }
    return taken;
  }

  #pop(): PendingExecution {
    const heap = this.#heap;
    const top = heap[0] as PendingExecution;
    const last = heap.pop() as PendingExecution;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        let smallestDue = last.dueAt;
        const l = heap[left];
        if (l !== undefined && l.dueAt < smallestDue) {
          smallest = left;
          smallestDue = l.dueAt;
        }
        const r = heap[right];
        if (r !== undefined && r.dueAt < smallestDue) smallest = right;
        if (smallest === i) break;
        heap[i] = heap[smallest] as PendingExecution;
        i = smallest;
      }
      heap[i] = last;
    }
    return top;
  }
}
