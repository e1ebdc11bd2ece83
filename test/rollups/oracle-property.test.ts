import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PoolClient } from '../../src/db/index.ts';
import {
  builtinRollups,
  installRollups,
  refreshRollup,
  type RollupDefinition,
} from '../../src/rollups/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { createPartitionedTestDatabase, partitionedSourcesSql } from '../support/partitioned-database.ts';
import { compareWithOracle, oracleQueries } from '../support/oracle.ts';
import { resetData } from '../support/rollup-helpers.ts';

// A zone with DST: the 14 days from 2026-10-24 hold the 25-hour day of 2026-11-01, a month change
// and two week changes, so every grain's bucket math is exercised.
const ZONE = 'America/New_York';
const BASE = Date.parse('2026-10-24T00:00:00Z');
const SPAN_MINUTES = 14 * 24 * 60;
const RUNS = Number(process.env.PROPERTY_RUNS ?? 300);
// On partitioned sources every statement plans a scan per partition: a case costs about four times
// as much, so half the cases by default.
const PARTITIONED_RUNS = Number(process.env.PROPERTY_RUNS_PARTITIONED ?? Math.ceil(RUNS / 2));

// On plain sources, two rollups with per-group state (deltaState, docs/delta-state.md) beside the
// built-in ones: the same measures as the hourly and daily execution rollups, brought up to date by
// applying changed rows to each group's state. Their oracle is the built-in rollups'.
const statefulRollups: RollupDefinition[] = ['execution_metrics_hourly', 'execution_metrics_daily'].map(
  (name) => {
    const def = builtinRollups.find((d) => d.name === name);
    if (def === undefined) throw new Error(`no built-in rollup ${name}`);
    return { ...def, name: `${name}_state`, deltaState: true };
  },
);
const statefulOracles = Object.fromEntries(
  statefulRollups.map((d) => [d.name, oracleQueries[d.name.replace(/_state$/, '')] ?? '']),
);
const allRollups = [...builtinRollups, ...statefulRollups];

const time = fc
  .integer({ min: 0, max: SPAN_MINUTES })
  .chain((m) =>
    fc.integer({ min: 0, max: 59 }).map((s) => new Date(BASE + m * 60_000 + s * 1000).toISOString()),
  );
const workspace = fc.integer({ min: 1, max: 3 });
const status = fc.constantFrom('running', 'success', 'failed', 'timeout', 'cancelled');
const duration = fc.option(fc.integer({ min: 0, max: 600_000 }), { nil: null });
const credits = fc.integer({ min: -500, max: 5000 }).map((c) => (c / 100).toFixed(2));
const pick = fc.nat(1000);

type SourceTable = 'execution_logs' | 'user_activity_events' | 'credit_transactions';
const sourceTable = fc.constantFrom<SourceTable>(
  'execution_logs',
  'user_activity_events',
  'credit_transactions',
);
/** The time column of each source table. */
const timeColumn: Record<SourceTable, string> = {
  execution_logs: 'started_at',
  user_activity_events: 'occurred_at',
  credit_transactions: 'created_at',
};

type Op =
  | {
      op: 'insertExecution';
      ws: number;
      user: number;
      workflow: number;
      status: string;
      at: string;
      duration: number | null;
      credits: string;
    }
  | { op: 'insertActivity'; ws: number; user: number; type: string; at: string; session: string | null }
  | { op: 'insertCredit'; ws: number; user: number | null; source: string; at: string; credits: string }
  | { op: 'finishExecution'; pick: number; status: string; duration: number | null; credits: string }
  | { op: 'moveExecution'; pick: number; at: string | null; ws: number | null }
  | { op: 'moveActivity'; pick: number; at: string | null; ws: number | null; type: string | null }
  | { op: 'moveCredit'; pick: number; at: string | null; ws: number | null; source: string | null }
  | { op: 'delete'; table: 'execution_logs' | 'user_activity_events' | 'credit_transactions'; pick: number }
  | { op: 'bulkUpdate'; ws: number; status: string }
  | { op: 'changeKey'; table: SourceTable; pick: number; at: string | null; ws: number | null }
  | { op: 'bulkChangeKey'; remainder: number; shiftHours: number }
  | { op: 'swapKeys'; a: number; b: number; at: string | null; ws: number | null }
  | { op: 'upsertExecution'; pick: number; fresh: boolean; ws: number; at: string; status: string }
  | { op: 'rolledBackSavepoint'; pick: number; at: string; ws: number; keep: boolean }
  | { op: 'windowRefresh'; rollup: number; from: string; to: string }
  | { op: 'refresh' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('insertExecution' as const),
      ws: workspace,
      user: fc.integer({ min: 1, max: 4 }),
      workflow: fc.integer({ min: 1, max: 3 }),
      status,
      at: time,
      duration,
      credits,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('insertActivity' as const),
      ws: workspace,
      user: fc.integer({ min: 1, max: 4 }),
      type: fc.constantFrom('login', 'page_view'),
      at: time,
      session: fc.option(fc.constantFrom('s1', 's2', 's3'), { nil: null }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('insertCredit' as const),
      ws: workspace,
      user: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null }),
      source: fc.constantFrom('execution', 'api', 'refund'),
      at: time,
      credits,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('finishExecution' as const), pick, status, duration, credits }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('moveExecution' as const),
      pick,
      at: fc.option(time, { nil: null }),
      ws: fc.option(workspace, { nil: null }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('moveActivity' as const),
      pick,
      at: fc.option(time, { nil: null }),
      ws: fc.option(workspace, { nil: null }),
      type: fc.option(fc.constantFrom('login', 'logout'), { nil: null }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('moveCredit' as const),
      pick,
      at: fc.option(time, { nil: null }),
      ws: fc.option(workspace, { nil: null }),
      source: fc.option(fc.constantFrom('api', 'storage'), { nil: null }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), table: sourceTable, pick }) },
  // Primary-key changes (issue 12): alone (at and ws null) or with a move in the same statement.
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('changeKey' as const),
      table: sourceTable,
      pick,
      at: fc.option(time, { nil: null }),
      ws: fc.option(workspace, { nil: null }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('bulkChangeKey' as const),
      remainder: fc.nat(2),
      shiftHours: fc.integer({ min: -72, max: 72 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('swapKeys' as const),
      a: pick,
      b: pick,
      at: fc.option(time, { nil: null }),
      ws: fc.option(workspace, { nil: null }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('upsertExecution' as const),
      pick,
      fresh: fc.boolean(),
      ws: workspace,
      at: time,
      status,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('rolledBackSavepoint' as const),
      pick,
      at: time,
      ws: workspace,
      keep: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('bulkUpdate' as const), ws: workspace, status }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('windowRefresh' as const),
      rollup: fc.nat(allRollups.length - 1),
      from: time,
      to: time,
    }),
  },
  { weight: 2, arbitrary: fc.constant({ op: 'refresh' as const }) },
);

/** SQL for the id of the (pick mod count)-th row of `table`; the pick is parameter $`param`. */
function nth(table: string, param = 1): string {
  return `(SELECT id FROM public.${table} ORDER BY id OFFSET ($${param}::int % greatest((SELECT count(*) FROM public.${table})::int, 1)) LIMIT 1)`;
}

/**
 * The database the ops run on. `partitioned`: the source tables were created by the application
 * range-partitioned by their time column, one partition a UTC day over the span and a day on each
 * side, `MINVALUE`/`MAXVALUE` partitions beyond (shifted keys can drift far), with `(id, time)`
 * primary keys; `aggjobs migrate` ran on them. Moves of a row's time cross partitions there.
 */
interface Target {
  db: TestDatabase;
  partitioned: boolean;
  /** The rollups refreshed and compared: the built-in ones, and on plain sources the stateful ones. */
  rollups: readonly RollupDefinition[];
}

/** Groups the stateful rollups brought up to date from their state (not recomputed). */
let groupsApplied = 0;

async function refreshAll(target: Target): Promise<void> {
  for (const def of target.rollups) {
    const result = await refreshRollup(target.db.pool, def, {
      timezone: ZONE,
      mode: { kind: 'incremental' },
    });
    groupsApplied += result.groupsApplied ?? 0;
  }
}

function compare(target: Target): ReturnType<typeof compareWithOracle> {
  return compareWithOracle(target.db.pool, ZONE, { oracles: target.partitioned ? {} : statefulOracles });
}

/** Single-row time moves that changed the row's partition (on plain tables a row has one). */
let crossPartitionMoves = 0;

/** Runs `work` in one transaction on one session. */
async function inTransaction(db: TestDatabase, work: (client: PoolClient) => Promise<void>): Promise<void> {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    await work(client);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    client.release();
  }
}

async function apply(target: Target, op: Op): Promise<void> {
  const { db, partitioned } = target;
  const q = (sql: string, params: unknown[]): Promise<unknown> => db.pool.query(sql, params);
  switch (op.op) {
    case 'insertExecution':
      await q(
        `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms, credits_used)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [op.ws, op.user, op.workflow, op.status, op.at, op.duration, op.credits],
      );
      return;
    case 'insertActivity':
      await q(
        `INSERT INTO public.user_activity_events (workspace_id, user_id, event_type, occurred_at, session_id) VALUES ($1, $2, $3, $4, $5)`,
        [op.ws, op.user, op.type, op.at, op.session],
      );
      return;
    case 'insertCredit':
      await q(
        `INSERT INTO public.credit_transactions (workspace_id, user_id, source, credits, created_at) VALUES ($1, $2, $3, $4, $5)`,
        [op.ws, op.user, op.source, op.credits, op.at],
      );
      return;
    case 'finishExecution':
      if (partitioned && op.pick % 2 === 1) {
        // Through the row's partition, named in the statement (its time does not change).
        const { rows } = await db.pool.query<{ part: string; id: string }>(
          `SELECT tableoid::regclass::text AS part, id FROM public.execution_logs WHERE id = ${nth('execution_logs')}`,
          [op.pick],
        );
        const row = rows[0];
        if (row !== undefined)
          await q(
            `UPDATE ${row.part} SET status = $2, duration_ms = $3, credits_used = $4, completed_at = started_at,
               workspace_id = workspace_id % 3 + 1 WHERE id = $1`,
            [row.id, op.status, op.duration, op.credits],
          );
        return;
      }
      await q(
        `UPDATE public.execution_logs SET status = $2, duration_ms = $3, credits_used = $4, completed_at = started_at
         WHERE id = ${nth('execution_logs')}`,
        [op.pick, op.status, op.duration, op.credits],
      );
      return;
    case 'moveExecution': {
      // The row's partition before and after: counts the moves across partitions (partitioned).
      const where = `id = ${nth('execution_logs')}`;
      const partition = async (): Promise<number | undefined> =>
        (
          await db.pool.query<{ part: number }>(
            `SELECT tableoid::int AS part FROM public.execution_logs WHERE ${where}`,
            [op.pick],
          )
        ).rows[0]?.part;
      const before = await partition();
      await q(
        `UPDATE public.execution_logs SET started_at = coalesce($2, started_at), workspace_id = coalesce($3, workspace_id)
         WHERE ${where}`,
        [op.pick, op.at, op.ws],
      );
      // The pick is by id order, which the move does not change.
      if (before !== undefined && (await partition()) !== before) crossPartitionMoves += 1;
      return;
    }
    case 'moveActivity':
      await q(
        `UPDATE public.user_activity_events SET occurred_at = coalesce($2, occurred_at), workspace_id = coalesce($3, workspace_id),
           event_type = coalesce($4, event_type) WHERE id = ${nth('user_activity_events')}`,
        [op.pick, op.at, op.ws, op.type],
      );
      return;
    case 'moveCredit':
      await q(
        `UPDATE public.credit_transactions SET created_at = coalesce($2, created_at), workspace_id = coalesce($3, workspace_id),
           source = coalesce($4, source) WHERE id = ${nth('credit_transactions')}`,
        [op.pick, op.at, op.ws, op.source],
      );
      return;
    case 'delete': {
      // Partitioned, odd picks: through the row's partition, named in the statement (its own
      // statement triggers fire, not the parent's).
      const { rows } = await db.pool.query<{ part: string; id: string }>(
        `SELECT tableoid::regclass::text AS part, id FROM public.${op.table} WHERE id = ${nth(op.table)}`,
        [op.pick],
      );
      const row = rows[0];
      if (partitioned && op.pick % 2 === 1 && row !== undefined)
        await q(`DELETE FROM ${row.part} WHERE id = $1`, [row.id]);
      else await q(`DELETE FROM public.${op.table} WHERE id = ${nth(op.table)}`, [op.pick]);
      return;
    }
    case 'bulkUpdate':
      // One statement, many rows: some move to another workspace, the rest change status.
      await q(
        `UPDATE public.execution_logs SET status = $2, workspace_id = CASE WHEN id % 2 = 0 THEN workspace_id % 3 + 1 ELSE workspace_id END
         WHERE workspace_id = $1`,
        [op.ws, op.status],
      );
      return;
    case 'changeKey':
      // A fresh id from the table's sequence: unique, and larger than every other id.
      await q(
        `UPDATE public.${op.table} SET id = nextval(pg_get_serial_sequence('public.${op.table}', 'id')),
           ${timeColumn[op.table]} = coalesce($2, ${timeColumn[op.table]}), workspace_id = coalesce($3, workspace_id)
         WHERE id = ${nth(op.table)}`,
        [op.pick, op.at, op.ws],
      );
      return;
    case 'bulkChangeKey':
      // The statement of issue 12, scaled down: many rows change id and time at once. Ids come from
      // the sequences (below a million), so adding a million never collides.
      await q(
        `UPDATE public.execution_logs SET id = id + 1000000, started_at = started_at + make_interval(hours => $2)
         WHERE id % 3 = $1`,
        [op.remainder, op.shiftHours],
      );
      return;
    case 'swapKeys':
      // Two rows exchange ids (through a negative one: the key is not deferrable), each possibly moved.
      await inTransaction(db, async (client) => {
        const { rows } = await client.query<{ a: string | null; b: string | null }>(
          `SELECT ${nth('execution_logs')} AS a, ${nth('execution_logs', 2)} AS b`,
          [op.a, op.b],
        );
        const { a, b } = rows[0] ?? { a: null, b: null };
        if (a === null || b === null || a === b) return;
        await client.query('UPDATE public.execution_logs SET id = -id WHERE id = $1', [a]);
        await client.query(
          'UPDATE public.execution_logs SET id = $2, started_at = coalesce($3, started_at) WHERE id = $1',
          [b, a, op.at],
        );
        await client.query(
          'UPDATE public.execution_logs SET id = $2, workspace_id = coalesce($3, workspace_id) WHERE id = -$1::bigint',
          [a, b, op.ws],
        );
      });
      return;
    case 'upsertExecution':
      if (partitioned) {
        // The key is (id, started_at), and PostgreSQL refuses an ON CONFLICT DO UPDATE that would
        // move a row to another partition: an existing row conflicts on its own key and moves to
        // another workspace; a fresh one inserts.
        await q(
          `INSERT INTO public.execution_logs (id, workspace_id, user_id, workflow_id, status, started_at)
           SELECT coalesce(e.id, nextval(pg_get_serial_sequence('public.execution_logs', 'id'))), $2, 1, 1, $3,
                  coalesce(e.started_at, $4)
           FROM (SELECT 1) one LEFT JOIN public.execution_logs e ON NOT $5 AND e.id = ${nth('execution_logs')}
           ON CONFLICT (id, started_at) DO UPDATE SET workspace_id = EXCLUDED.workspace_id, status = EXCLUDED.status`,
          [op.pick, op.ws, op.status, op.at, op.fresh],
        );
        return;
      }
      // An existing id takes the ON CONFLICT DO UPDATE path and moves the row; a fresh one inserts.
      await q(
        `INSERT INTO public.execution_logs (id, workspace_id, user_id, workflow_id, status, started_at)
         VALUES (coalesce(CASE WHEN NOT $5 THEN ${nth('execution_logs')} END,
                          nextval(pg_get_serial_sequence('public.execution_logs', 'id'))), $2, 1, 1, $3, $4)
         ON CONFLICT (id) DO UPDATE SET workspace_id = EXCLUDED.workspace_id, started_at = EXCLUDED.started_at,
           status = EXCLUDED.status`,
        [op.pick, op.ws, op.status, op.at, op.fresh],
      );
      return;
    case 'rolledBackSavepoint':
      // A row moved (and re-keyed) inside a savepoint that is rolled back must leave no trace: no
      // change-log entry, no stamp. `keep`: the transaction also commits a write outside it.
      await inTransaction(db, async (client) => {
        const logged = async (): Promise<number> =>
          Number(
            (await client.query<{ n: string }>('SELECT count(*) AS n FROM aggjobs.change_log')).rows[0]?.n,
          );
        const before = await logged();
        if (op.keep)
          await client.query(
            `INSERT INTO public.credit_transactions (workspace_id, source, credits, created_at) VALUES ($1, 'api', 1, $2)`,
            [op.ws, op.at],
          );
        await client.query('SAVEPOINT moved');
        await client.query(
          `UPDATE public.execution_logs SET id = id + 1000000, started_at = $2, workspace_id = $3 WHERE id = ${nth('execution_logs')}`,
          [op.pick, op.at, op.ws],
        );
        await client.query(
          `DELETE FROM public.user_activity_events WHERE id = ${nth('user_activity_events')}`,
          [op.pick],
        );
        await client.query('ROLLBACK TO SAVEPOINT moved');
        expect(await logged()).toBe(before);
        const { rows } = await client.query<{ n: string }>(
          `SELECT count(*) AS n FROM public.execution_logs WHERE aggjobs_xid = pg_current_xact_id_if_assigned()`,
        );
        expect(Number(rows[0]?.n)).toBe(0);
      });
      return;
    case 'windowRefresh': {
      const def = target.rollups[op.rollup % target.rollups.length];
      if (def === undefined) return;
      const [from, to] = op.from <= op.to ? [op.from, op.to] : [op.to, op.from];
      await refreshRollup(db.pool, def, {
        timezone: ZONE,
        mode: { kind: 'window', start: new Date(from), end: new Date(to) },
      });
      return;
    }
    case 'refresh':
      await refreshAll(target);
      return;
  }
}

describe.each([
  { sources: 'plain source tables', partitioned: false },
  { sources: 'source tables partitioned by day', partitioned: true },
])('rollups equal a plain GROUP BY over the source rows ($sources)', ({ partitioned }) => {
  const target = { partitioned, rollups: partitioned ? builtinRollups : allRollups } as Target;
  beforeAll(async () => {
    target.db = partitioned
      ? await createPartitionedTestDatabase(
          partitionedSourcesSql({ from: '2026-10-23', to: '2026-11-08' }, { below: true, above: true }),
        )
      : await createTestDatabase();
    if (!partitioned) await installRollups(target.db.pool, allRollups);
  });

  const runs = partitioned ? PARTITIONED_RUNS : RUNS;
  it(`after random inserts, late inserts, updates, moves, key changes, upserts, rolled-back savepoints and deletes (${runs} cases, ${ZONE}${partitioned ? '' : '; with per-group state too'})`, async () => {
    const { db } = target;
    crossPartitionMoves = 0;
    groupsApplied = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 25 }), async (ops) => {
        await resetData(db.pool);
        if (!partitioned)
          await db.pool.query(`TRUNCATE ${statefulRollups.map((d) => `analytics.${d.name}`).join(', ')}`);
        await refreshAll(target); // initial run on empty tables: the rest is incremental
        for (const op of ops) {
          await apply(target, op);
          if (op.op === 'refresh') expect(await compare(target)).toEqual([]);
        }
        await refreshAll(target);
        expect(await compare(target)).toEqual([]);
      }),
      { numRuns: runs, endOnFailure: true },
    );
    // The property ran over rows that did move between partitions (and none on plain tables).
    if (partitioned) expect(crossPartitionMoves).toBeGreaterThan(0);
    else expect(crossPartitionMoves).toBe(0);
    // The stateful rollups took changes through their state (and not only recomputed).
    if (!partitioned) expect(groupsApplied).toBeGreaterThan(0);
  }, 600_000);
});
