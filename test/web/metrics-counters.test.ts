/**
 * /metrics counters only grow: they come from aggjobs.run_totals (migration 000010), which a run
 * reaching a final state increments once and cleanup's pruning of the run history does not lower.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RUNTIME_BUCKETS, runTotals, runtimeHistograms } from '../../src/runtime/index.ts';
import { createTestDatabase } from '../support/database.ts';

const db = await createTestDatabase();

async function run(state: string, durationMs: number | null): Promise<string> {
  const id = randomUUID();
  await db.pool.query(
    `INSERT INTO aggjobs.task_runs (id, task, state, queue) VALUES ($1, 'metrics_task', 'queued', 'maintenance')`,
    [id],
  );
  await db.pool.query(`UPDATE aggjobs.task_runs SET state = 'running' WHERE id = $1`, [id]);
  await db.pool.query(
    `UPDATE aggjobs.task_runs SET state = $2, duration_ms = $3, finished_at = now() WHERE id = $1`,
    [id, state, durationMs],
  );
  return id;
}

describe('metrics counters', () => {
  it('the histogram bounds in the database are the ones /metrics labels', async () => {
    const { rows } = await db.pool.query<{ b: number[] }>('SELECT aggjobs.runtime_bounds() AS b');
    expect(rows[0]?.b).toEqual([...RUNTIME_BUCKETS]);
  });

  it('count each finished run once, by state and duration, and keep counting after the history is pruned', async () => {
    await run('succeeded', 50); // ≤ 0.1 s
    await run('succeeded', 3000); // ≤ 5 s
    const failed = await run('failed', 700); // ≤ 1 s
    // A second write of a final state (not a transition) does not count again.
    await db.pool.query(`UPDATE aggjobs.task_runs SET error = 'x' WHERE id = $1`, [failed]);
    await db.pool.query(
      `INSERT INTO aggjobs.task_runs (id, task, state, queue) VALUES ($1, 'metrics_task', 'revoked', 'maintenance')`,
      [randomUUID()],
    );
    const expectTotals = async (succeeded: number): Promise<void> => {
      const totals = (await runTotals(db.pool)).filter((t) => t.task === 'metrics_task');
      expect(totals).toEqual([
        { task: 'metrics_task', state: 'failed', n: 1 },
        { task: 'metrics_task', state: 'revoked', n: 1 },
        { task: 'metrics_task', state: 'succeeded', n: succeeded },
      ]);
    };
    await expectTotals(2);
    const histogram = (await runtimeHistograms(db.pool)).find((h) => h.task === 'metrics_task');
    // Bounds 0.1, 0.5, 1, 5, …: cumulative counts of the three timed runs (the revoked one has none).
    expect(histogram).toMatchObject({ count: 3, sumSeconds: 3.75 });
    expect(histogram?.buckets.slice(0, 5)).toEqual([1, 1, 2, 3, 3]);

    // Cleanup prunes the history: the counters stay, and go on growing.
    await db.pool.query(`DELETE FROM aggjobs.task_runs WHERE task = 'metrics_task'`);
    await expectTotals(2);
    await run('succeeded', 20);
    await expectTotals(3);
  });
});
