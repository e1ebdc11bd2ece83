import { describe, expect, it } from 'vitest';
import { DueQueue } from './due-queue.ts';
import { seededRandom } from './seeded-random.ts';

describe('DueQueue', () => {
  it('hands out due items earliest first, up to a limit', () => {
    const queue = new DueQueue();
    const random = seededRandom(42);
    const dues = Array.from({ length: 500 }, () => Math.floor(random() * 10_000));
    dues.forEach((dueAt, id) => queue.push({ id, dueAt, outcome: 'success' }));
    expect(queue.size).toBe(500);

    const first = queue.takeDue(5000, 100);
    expect(first).toHaveLength(100);
    const rest = queue.takeDue(5000, Infinity);
    const taken = [...first, ...rest].map((p) => p.dueAt);
    expect(taken).toEqual(dues.filter((d) => d <= 5000).sort((a, b) => a - b));
    expect(queue.size).toBe(dues.filter((d) => d > 5000).length);
    expect(queue.takeDue(5000, 10)).toEqual([]);
  });

  it('is empty-safe', () => {
    expect(new DueQueue().takeDue(Date.now(), 10)).toEqual([]);
  });
});
