import { beforeAll, describe, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { assertRollupsMatchOracle } from '../support/oracle.ts';
import { refreshAll, resetData } from '../support/rollup-helpers.ts';

/**
 * MERGE (PostgreSQL 15) on a source: one statement that inserts, updates (within a group and
 * across groups) and deletes. Its statement triggers fire once per action with transition tables
 * holding that action's rows; the rollups must equal the plain GROUP BY after it.
 */
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await resetData(db.pool);
});

const ZONE = 'America/New_York';

describe('MERGE into a source table', () => {
  it('inserts, updates across buckets and workspaces, and deletes in one statement; rollups stay exact', async () => {
    await db.pool.query(
      `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
       SELECT 1 + i % 3, i % 5, i % 4, 'running', timestamptz '2026-05-01 02:00Z' + make_interval(mins => i * 37), i, 1
       FROM generate_series(1, 200) i`,
    );
    await refreshAll(db.pool, ZONE);
    await assertRollupsMatchOracle(db.pool, ZONE);
    for (let round = 0; round < 3; round += 1) {
      await db.pool.query(
        `MERGE INTO public.execution_logs t
         USING (SELECT g AS id, g % 4 AS action FROM generate_series(${round * 7 + 1}, 260, 3) g) c
         ON t.id = c.id
         WHEN MATCHED AND c.action = 0 THEN DELETE
         WHEN MATCHED AND c.action = 1 THEN UPDATE SET started_at = t.started_at - interval '26 hours', workspace_id = 7
         WHEN MATCHED THEN UPDATE SET status = 'success', duration_ms = t.duration_ms + 5
         WHEN NOT MATCHED THEN INSERT (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
           VALUES (2, 1, 1, 'failed', timestamptz '2026-05-02 10:00Z' + make_interval(mins => c.id), c.id, 2)`,
      );
      await refreshAll(db.pool, ZONE);
      await assertRollupsMatchOracle(db.pool, ZONE);
    }
  });
});
