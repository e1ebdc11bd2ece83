import { describe, expect, it } from 'vitest';
import { Semaphore } from './semaphore.ts';

describe('Semaphore', () => {
  it('hands slots out in order and grows and shrinks at run time', async () => {
    const s = new Semaphore(1);
    const order: number[] = [];
    await s.acquire();
    const second = s.acquire().then(() => order.push(2));
    const third = s.acquire().then(() => order.push(3));
    expect(s.inUse).toBe(1);
    s.resize(2); // one more slot: the first waiter goes
    await second;
    expect(order).toEqual([2]);
    s.resize(1); // shrink: releases do not hand over until under the limit
    s.release();
    expect(order).toEqual([2]);
    s.release();
    await third;
    expect(order).toEqual([2, 3]);
    expect(s.inUse).toBe(1);
  });
});

describe('Semaphore.close', () => {
  it('refuses the waiting and every later acquire', async () => {
    const s = new Semaphore(1);
    expect(await s.acquire()).toBe(true);
    const waiting = s.acquire();
    s.close();
    expect(await waiting).toBe(false);
    expect(await s.acquire()).toBe(false);
    expect(s.inUse).toBe(1);
  });
});

describe('Semaphore.tryAcquire', () => {
  it('takes a free slot without waiting, and refuses when none is free or closed', async () => {
    const s = new Semaphore(1);
    expect(s.tryAcquire()).toBe(true);
    expect(s.tryAcquire()).toBe(false);
    s.release();
    s.close();
    expect(s.tryAcquire()).toBe(false);
    expect(await s.acquire()).toBe(false);
  });
});
