import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  builtinRollups,
  installRollups,
  rebuildRollup,
  refreshRollup,
  RollupRebuildRequiredError,
  type RollupDefinition,
} from '../../src/rollups/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { compareWithOracle } from '../support/oracle.ts';
import { resetData } from '../support/rollup-helpers.ts';

/**
 * Zone and definition changes mixed with rebuilds and random inserts, moves and deletes: a refresh
 * is refused exactly when the zone or the definition differs from what built the rows, a refused
 * refresh writes nothing, and after a final rebuild-if-needed and refresh every row of the eight
 * built-in rollups and of a user-defined one equals a plain GROUP BY in the current zone.
 */
const RUNS = Number(process.env.IDENTITY_PROPERTY_RUNS ?? 20);
const ZONES = ['America/New_York', 'Asia/Kathmandu', 'UTC', 'Asia/Kolkata'] as const;

/** A user-defined rollup whose `runs` measure has two versions. */
function custom(variant: 0 | 1): RollupDefinition {
  return {
    name: 'identity_prop_runs',
    source: 'public.execution_logs',
    timeColumn: 'started_at',
    grain: 'day',
    dimensions: [{ column: 'workspace_id', type: 'bigint' }],
    measures: [
      {
        name: 'runs',
        type: 'bigint',
        sql: variant === 0 ? 'count(*)' : "count(*) FILTER (WHERE status <> 'running')",
      },
    ],
  };
}

function customOracle(variant: 0 | 1): string {
  const runs = variant === 0 ? 'count(*)' : "count(*) FILTER (WHERE status <> 'running')";
  return `SELECT date_trunc('day', started_at, $1) AS bucket_start, workspace_id, ${runs} AS runs
          FROM public.execution_logs GROUP BY 1, 2`;
}

type Command =
  | { kind: 'insert'; minute: number; workspace: number; running: boolean }
  | { kind: 'move'; pick: number; minutes: number }
  | { kind: 'delete'; pick: number }
  | { kind: 'refresh' }
  | { kind: 'zone'; zone: (typeof ZONES)[number] }
  | { kind: 'definition' }
  | { kind: 'rebuild' };

const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({
    kind: fc.constant('insert' as const),
    minute: fc.integer({ min: 0, max: 4 * 1440 }),
    workspace: fc.integer({ min: 1, max: 3 }),
    running: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('move' as const),
    pick: fc.nat(),
    minutes: fc.integer({ min: -1440, max: 1440 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }),
  fc.constant({ kind: 'refresh' as const }),
  fc.record({ kind: fc.constant('zone' as const), zone: fc.constantFrom(...ZONES) }),
  fc.constant({ kind: 'definition' as const }),
  fc.constant({ kind: 'rebuild' as const }),
);

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await installRollups(db.pool, [...builtinRollups, custom(0)]);
});

describe('build identity under random changes', () => {
  it('refuses exactly the refreshes under another zone or definition; rebuilds restore the oracle', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 5, maxLength: 25 }), async (commands) => {
        await resetData(db.pool);
        await db.pool.query('TRUNCATE analytics.identity_prop_runs');
        await db.pool.query(
          `UPDATE aggjobs.rollup_state SET snapshot = NULL, horizon = NULL, built_timezone = NULL,
             built_fingerprint = NULL, built_definition = NULL, built_system_identifier = NULL`,
        );
        let zone: string = ZONES[0];
        let variant: 0 | 1 = 0;
        // What built the rows (identical for every rollup: they are refreshed and rebuilt together).
        let built: { zone: string; variant: 0 | 1 } | undefined;
        const rollups = (): RollupDefinition[] => [...builtinRollups, custom(variant)];
        const contents = async (table: string): Promise<string> => {
          const { rows } = await db.pool.query<{ rows: string | null }>(
            `SELECT json_agg(t ORDER BY t)::text AS rows FROM analytics.${table} t`,
          );
          return rows[0]?.rows ?? '';
        };
        const refresh = async (): Promise<void> => {
          // The built-in definitions never change here: only a zone change refuses them.
          const zoneChanged = built !== undefined && built.zone !== zone;
          const customRefused = zoneChanged || (built !== undefined && built.variant !== variant);
          const daily = await contents('execution_metrics_daily');
          const customRows = await contents('identity_prop_runs');
          for (const def of rollups()) {
            const refused = def.name === 'identity_prop_runs' ? customRefused : zoneChanged;
            const run = refreshRollup(db.pool, def, { timezone: zone, mode: { kind: 'incremental' } });
            if (refused) await expect(run).rejects.toBeInstanceOf(RollupRebuildRequiredError);
            else await run;
          }
          // A refused refresh writes nothing.
          if (zoneChanged) expect(await contents('execution_metrics_daily')).toBe(daily);
          if (customRefused) expect(await contents('identity_prop_runs')).toBe(customRows);
          built ??= { zone, variant };
        };
        const rebuild = async (): Promise<void> => {
          for (const def of rollups()) await rebuildRollup(db.pool, def, { timezone: zone });
          built = { zone, variant };
        };

        for (const c of commands) {
          switch (c.kind) {
            case 'insert':
              await db.pool.query(
                `INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at, duration_ms)
                 VALUES ($1, 1, 1, $2, timestamptz '2026-10-31 00:00Z' + make_interval(mins => $3), $3 % 97)`,
                [c.workspace, c.running ? 'running' : 'success', c.minute],
              );
              break;
            case 'move':
              await db.pool.query(
                `UPDATE public.execution_logs SET started_at = started_at + make_interval(mins => $2),
                        workspace_id = 1 + (workspace_id % 3)
                 WHERE id = (SELECT id FROM public.execution_logs ORDER BY id OFFSET $1 % greatest(1, (SELECT count(*) FROM public.execution_logs)) LIMIT 1)`,
                [c.pick, c.minutes],
              );
              break;
            case 'delete':
              await db.pool.query(
                `DELETE FROM public.execution_logs
                 WHERE id = (SELECT id FROM public.execution_logs ORDER BY id OFFSET $1 % greatest(1, (SELECT count(*) FROM public.execution_logs)) LIMIT 1)`,
                [c.pick],
              );
              break;
            case 'refresh':
              await refresh();
              break;
            case 'zone':
              zone = c.zone;
              break;
            case 'definition':
              variant = variant === 0 ? 1 : 0;
              break;
            case 'rebuild':
              await rebuild();
              break;
          }
        }
        if (built !== undefined && (built.zone !== zone || built.variant !== variant)) await rebuild();
        await refresh();
        expect(await compareWithOracle(db.pool, zone)).toEqual([]);
        const { rows } = await db.pool.query(
          `(${customOracle(variant)} EXCEPT SELECT bucket_start, workspace_id, runs FROM analytics.identity_prop_runs)
           UNION ALL
           (SELECT bucket_start, workspace_id, runs FROM analytics.identity_prop_runs EXCEPT ${customOracle(variant)})`,
          [zone],
        );
        expect(rows).toEqual([]);
      }),
      { numRuns: RUNS },
    );
  }, 600_000);
});
