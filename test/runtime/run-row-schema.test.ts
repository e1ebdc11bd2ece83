/**
 * The hand-written row type of aggjobs.task_runs (RunRow, src/runtime/run-log.ts) against the
 * migrated table: tsc checks the shape below against RunRow (a field missing, extra, or nullable in
 * one and not the other does not compile), this test checks it against information_schema.
 */
import { describe, expect, it } from 'vitest';
import type { RunRow } from '../../src/runtime/index.ts';
import { createTestDatabase } from '../support/database.ts';

type Nullability<T> = { [K in keyof T]-?: null extends T[K] ? 'null' : 'not null' };

const runRow: Nullability<RunRow> = {
  id: 'not null',
  task: 'not null',
  args: 'not null',
  state: 'not null',
  queue: 'not null',
  worker: 'null',
  attempts: 'not null',
  enqueued_at: 'not null',
  started_at: 'null',
  finished_at: 'null',
  duration_ms: 'null',
  result: 'null',
  error: 'null',
  error_stack: 'null',
  logs: 'null',
  parent_id: 'null',
  lease_token: 'null',
  lease_expires_at: 'null',
  terminate_requested_at: 'null',
  not_before: 'null',
  state_changed_at: 'not null',
  retry_of: 'null',
};

const db = await createTestDatabase();

describe('RunRow', () => {
  it('has exactly the columns of aggjobs.task_runs, nullable where they are', async () => {
    const { rows } = await db.pool.query<{ column_name: string; is_nullable: 'YES' | 'NO' }>(
      `SELECT column_name, is_nullable FROM information_schema.columns
       WHERE table_schema = 'aggjobs' AND table_name = 'task_runs'`,
    );
    const table = Object.fromEntries(
      rows.map((r) => [r.column_name, r.is_nullable === 'YES' ? 'null' : 'not null']),
    );
    expect(Object.keys(table).length).toBeGreaterThan(10);
    expect(runRow).toEqual(table);
  });
});
