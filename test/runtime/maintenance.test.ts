import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/index.ts';
import { runEagerly } from '../../src/runtime/index.ts';
import { createTestDatabase } from '../support/database.ts';
import { testSettings } from './runtime-harness.ts';

const db = await createTestDatabase();

describe('cleanup_old_data', () => {
  it('prunes run history older than RUN_HISTORY_DAYS, never a run in progress, and truncation records no rollup needs', async () => {
    await db.pool.query(
      `INSERT INTO aggjobs.task_runs (id, task, state, queue, enqueued_at) VALUES
         ('old-done', 'health_check', 'succeeded', 'maintenance', now() - interval '40 days'),
         ('old-running', 'health_check', 'running', 'maintenance', now() - interval '40 days'),
         ('recent', 'health_check', 'failed', 'maintenance', now() - interval '5 days')`,
    );
    // A truncation record no rollup can be refused for (no rollup reads that table).
    await db.pool.query(
      `INSERT INTO aggjobs.source_truncations (source_table, truncated_table) VALUES ('public.no_rollup_reads', 'public.no_rollup_reads')`,
    );
    const settings = testSettings('postgres', { RUN_HISTORY_DAYS: '30' });
    const { result } = await runEagerly(
      { settings, pool: db.pool, logger: createLogger('silent') },
      'cleanup_old_data',
      { kwargs: { retention_days: 90 } },
    );
    expect(result).toMatchObject({ retentionDays: 90, runHistoryPruned: 1 });
    const { rows } = await db.pool.query<{ id: string }>(
      `SELECT id FROM aggjobs.task_runs WHERE id IN ('old-done', 'old-running', 'recent') ORDER BY id`,
    );
    expect(rows.map((r) => r.id)).toEqual(['old-running', 'recent']);
    expect(result).toMatchObject({ truncationsPruned: 1 });
    const left = await db.pool.query(
      `SELECT FROM aggjobs.source_truncations WHERE source_table = 'public.no_rollup_reads'`,
    );
    expect(left.rowCount).toBe(0);
  });
});
