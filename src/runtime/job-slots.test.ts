import { describe, expect, it } from 'vitest';
import { JobSlots, type SlotHolder } from './job-slots.ts';

const holder = (): SlotHolder => ({ reserved: 0, concurrency: 1 });

describe('JobSlots', () => {
  it("sets each Worker's fetch limit to what it holds plus what is free, at least 1", async () => {
    const slots = new JobSlots(3);
    const a = holder();
    const b = holder();
    slots.register(a);
    slots.register(b);
    expect([a.concurrency, b.concurrency]).toEqual([3, 3]);
    expect(await slots.take(a)).toBe(true);
    expect(await slots.take(a)).toBe(true);
    expect([a.concurrency, b.concurrency]).toEqual([3, 1]);
    expect(await slots.take(b)).toBe(true);
    expect([a.concurrency, b.concurrency]).toEqual([2, 1]);
    slots.give(a);
    expect([a.concurrency, b.concurrency]).toEqual([2, 2]);
  });

  it('a Worker that holds jobs is refused at once when none is free; one that holds none waits', async () => {
    const slots = new JobSlots(1);
    const a = holder();
    const b = holder();
    slots.register(a);
    slots.register(b);
    expect(await slots.take(a)).toBe(true);
    expect(await slots.take(a)).toBe(false);
    let bTook: boolean | undefined;
    const waiting = slots.take(b).then((t) => (bTook = t));
    await Promise.resolve();
    expect(bTook).toBeUndefined();
    slots.give(a);
    await waiting;
    expect(bTook).toBe(true);
    expect(b.reserved).toBe(1);
    slots.close();
    expect(await slots.take(a)).toBe(false);
  });

  it('a slot passes to the next job only when nobody waits, the slots are open and not over size', async () => {
    const slots = new JobSlots(2);
    const a = holder();
    const b = holder();
    slots.register(a);
    slots.register(b);
    expect(await slots.take(a)).toBe(true);
    expect(await slots.take(a)).toBe(true);
    expect(slots.mayHandOver()).toBe(true);
    // b has a job to fetch and waits for a slot: a's next ending gives its slot back instead.
    const waiting = slots.take(b);
    await Promise.resolve();
    expect(slots.mayHandOver()).toBe(false);
    slots.give(a);
    expect(await waiting).toBe(true);
    expect(slots.mayHandOver()).toBe(true);
    // Resized down: the slots in use above the new size are taken back as their jobs end.
    slots.resize(1);
    expect(slots.mayHandOver()).toBe(false);
    slots.give(a);
    expect(slots.mayHandOver()).toBe(true);
    slots.close();
    expect(slots.mayHandOver()).toBe(false);
  });
});
