import fc from 'fast-check';
import type { Pool } from '../../src/db/index.ts';

// Random writes for the oracle property tests on Citus: inserts (late rows among them: any time of
// the span, whatever was refreshed), updates of measures, of the time (across buckets) and of the
// workspace (a delete and an insert: across shards and nodes), deletes.

// A zone with DST: the 10 days from 2026-10-26 hold the 25-hour day of 2026-11-01 and a month change.
export const ZONE = 'America/New_York';
export const BASE = Date.parse('2026-10-26T00:00:00Z');
const SPAN_MINUTES = 10 * 24 * 60;
const SPAN_END = new Date(BASE + 12 * 86_400_000);

export type Table = 'execution_logs' | 'user_activity_events' | 'credit_transactions';
const timeColumn: Record<Table, string> = {
  execution_logs: 'started_at',
  user_activity_events: 'occurred_at',
  credit_transactions: 'created_at',
};

const time = fc.integer({ min: 0, max: SPAN_MINUTES }).map((m) => new Date(BASE + m * 60_000).toISOString());
const workspace = fc.integer({ min: 1, max: 6 });
const status = fc.constantFrom('running', 'success', 'failed', 'timeout', 'cancelled');
const table = fc.constantFrom<Table>('execution_logs', 'user_activity_events', 'credit_transactions');

export type Op =
  | { op: 'insert'; table: Table; ws: number; user: number; at: string; status: string; n: number }
  | { op: 'finish'; pick: number; status: string; duration: number }
  | { op: 'moveTime'; table: Table; pick: number; at: string }
  | { op: 'moveWorkspace'; table: Table; pick: number; ws: number }
  | { op: 'delete'; table: Table; pick: number };

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('insert' as const),
      table,
      ws: workspace,
      user: fc.integer({ min: 1, max: 4 }),
      at: time,
      status,
      n: fc.integer({ min: 1, max: 4 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('finish' as const),
      pick: fc.nat(1000),
      status,
      duration: fc.integer({ min: 0, max: 600_000 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('moveTime' as const), table, pick: fc.nat(1000), at: time }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('moveWorkspace' as const),
      table,
      pick: fc.nat(1000),
      ws: workspace,
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), table, pick: fc.nat(1000) }) },
);

/** A row of `t` picked by index, with its distribution column (so the write is routed to one shard). */
async function pickRow(pool: Pool, t: Table, pick: number): Promise<{ ws: string; id: string } | undefined> {
  const { rows } = await pool.query<{ ws: string; id: string }>(
    `SELECT workspace_id AS ws, id FROM public.${t} ORDER BY id`,
  );
  return rows.length === 0 ? undefined : rows[pick % rows.length];
}

export async function apply(pool: Pool, op: Op): Promise<void> {
  const q = (sql: string, params: unknown[]): Promise<unknown> => pool.query(sql, params);
  switch (op.op) {
    case 'insert':
      if (op.table === 'execution_logs')
        await q(
          `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
           SELECT $1, $2 + g, g % 2, $3, $4::timestamptz + g * interval '7 minutes', 100 * g, g * 1.25
           FROM generate_series(1, $5) g`,
          [op.ws, op.user, op.status, op.at, op.n],
        );
      else if (op.table === 'user_activity_events')
        await q(
          `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id)
           SELECT $1, $2 + g, CASE WHEN g % 2 = 0 THEN 'login' ELSE 'page_view' END,
                  $3::timestamptz + g * interval '5 minutes', 's' || (g % 3)
           FROM generate_series(1, $4) g`,
          [op.ws, op.user, op.at, op.n],
        );
      else
        await q(
          `INSERT INTO public.credit_transactions (workspace_id, user_id, source, credits, created_at)
           SELECT $1, $2, CASE WHEN g % 2 = 0 THEN 'api' ELSE 'execution' END, g * 2.5 - 3,
                  $3::timestamptz + g * interval '11 minutes'
           FROM generate_series(1, $4) g`,
          [op.ws, op.user, op.at, op.n],
        );
      return;
    case 'finish': {
      const row = await pickRow(pool, 'execution_logs', op.pick);
      if (row !== undefined)
        await q(
          // A value, not started_at + interval: Citus refuses STABLE functions of columns in an UPDATE.
          `UPDATE public.execution_logs SET status = $3, duration_ms = $4, completed_at = $5
           WHERE workspace_id = $1 AND id = $2`,
          [row.ws, row.id, op.status, op.duration, SPAN_END],
        );
      return;
    }
    case 'moveTime': {
      const row = await pickRow(pool, op.table, op.pick);
      if (row !== undefined)
        await q(
          `UPDATE public.${op.table} SET ${timeColumn[op.table]} = $3 WHERE workspace_id = $1 AND id = $2`,
          [row.ws, row.id, op.at],
        );
      return;
    }
    case 'moveWorkspace': {
      // Citus does not update a distribution column in place: the application moves a row between
      // workspaces as a delete and an insert, in one transaction.
      const row = await pickRow(pool, op.table, op.pick);
      if (row === undefined) return;
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        // Citus allows no non-immutable function in RETURNING: read the row, then delete it.
        const { rows } = await client.query<{ row: Record<string, unknown> }>(
          `SELECT to_jsonb(t) AS row FROM public.${op.table} t WHERE workspace_id = $1 AND id = $2`,
          [row.ws, row.id],
        );
        await client.query(`DELETE FROM public.${op.table} WHERE workspace_id = $1 AND id = $2`, [
          row.ws,
          row.id,
        ]);
        const moved = rows[0]?.row;
        if (moved !== undefined)
          await client.query(
            `INSERT INTO public.${op.table} SELECT * FROM jsonb_populate_record(NULL::public.${op.table}, $1)`,
            [{ ...moved, workspace_id: op.ws }],
          );
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      } finally {
        client.release();
      }
      return;
    }
    case 'delete': {
      const row = await pickRow(pool, op.table, op.pick);
      if (row !== undefined)
        await q(`DELETE FROM public.${op.table} WHERE workspace_id = $1 AND id = $2`, [row.ws, row.id]);
      return;
    }
  }
}
